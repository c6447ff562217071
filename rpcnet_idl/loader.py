"""Load `.rpc` files and their imports into a `Program`, then check it.

Imports resolve relative to the importing file first, then against each include directory in
order. Every file is keyed by its resolved absolute path (so a file reached twice is loaded
once) and keeps the path the user would recognise (relative stays relative) for diagnostics.
Problems never raise out of `load`: they come back as diagnostics beside as much of the
program as could be loaded.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import ast
from .diagnostics import Diagnostic, IdlError, Severity
from .parser import parse

__all__ = ["LoadResult", "Program", "Symbol", "load", "load_checked", "load_text"]


@dataclass(frozen=True)
class Symbol:
    """A declaration and where it lives."""

    fqn: str
    """Fully qualified name, such as ``acme.compute.v1.Task``."""
    decl: ast.Declaration
    schema: ast.Schema
    """The file that declares it."""


@dataclass
class Program:
    """Every schema loaded for one run, with the symbols they declare."""

    roots: list[ast.Schema]
    """The files named on the command line, in the order given."""
    schemas: dict[str, ast.Schema]
    """Every loaded file, keyed by resolved absolute path (in-memory files: normalised path)."""
    symbols: dict[str, Symbol]
    """Fully qualified name -> the first declaration of that name."""
    sources: dict[str, str] = field(default_factory=dict)
    """The text of each file, by the same key as `schemas`."""
    import_keys: dict[str, list[str]] = field(default_factory=dict)
    """Key of a file -> keys of the files it imports directly (those that were found)."""

    def __post_init__(self) -> None:
        self._key_by_id = {id(schema): key for key, schema in self.schemas.items()}
        self._visible: dict[int, dict[str, Symbol]] = {}

    def key_of(self, schema: ast.Schema) -> str:
        """The key of `schema` in `schemas`."""
        key = self._key_by_id.get(id(schema))
        if key is None:
            for candidate, loaded in self.schemas.items():
                if loaded == schema:
                    return candidate
            raise KeyError(schema.path)
        return key

    def imports_of(self, schema: ast.Schema) -> list[ast.Schema]:
        """The schemas `schema` imports directly, in import order."""
        keys = self.import_keys.get(self.key_of(schema), [])
        return [self.schemas[key] for key in keys if key in self.schemas]

    def source_line(self, schema: ast.Schema, line: int) -> str:
        """The text of `line` (1-based) of `schema`, or "" when unknown."""
        text = self.sources.get(self.key_of(schema), "")
        lines = text.splitlines()
        return lines[line - 1] if 0 < line <= len(lines) else ""

    def visible_symbols(self, schema: ast.Schema) -> dict[str, Symbol]:
        """Names a reference in `schema` may use: qualified names of this file and its direct
        imports, and unqualified names of those declared in the same package."""
        cached = self._visible.get(id(schema))
        if cached is not None:
            return cached
        visible: dict[str, Symbol] = {}
        for source in [schema, *self.imports_of(schema)]:
            for decl in source.declarations:
                symbol = Symbol(f"{source.package}.{decl.name}", decl, source)
                visible.setdefault(symbol.fqn, symbol)
                if source.package == schema.package:
                    visible.setdefault(decl.name, symbol)
        self._visible[id(schema)] = visible
        return visible

    def resolve(self, schema: ast.Schema, ref: ast.NamedType) -> Symbol | None:
        """The declaration `ref` (written in `schema`) names, or None."""
        return self.visible_symbols(schema).get(ref.name)


@dataclass
class LoadResult:
    program: Program
    """As much as could be loaded."""
    diagnostics: list[Diagnostic]
    """Syntax, import and checker diagnostics, errors and warnings, in file and line order."""

    @property
    def ok(self) -> bool:
        """True when no diagnostic is an error."""
        return not any(d.severity is Severity.ERROR for d in self.diagnostics)


_Reader = Callable[[str], "tuple[str, str] | None"]
"""Display path -> (key, text), or None when there is no such file; `_Unreadable` when it
exists but cannot be read."""


class _Unreadable(Exception):
    """A file that exists but cannot be read as UTF-8 text."""


class _Loader:
    def __init__(self, read: _Reader, include_dirs: Sequence[str]) -> None:
        self._read = read
        self._include_dirs = list(include_dirs)
        self.schemas: dict[str, ast.Schema] = {}
        self.sources: dict[str, str] = {}
        self.import_keys: dict[str, list[str]] = {}
        self.diagnostics: list[Diagnostic] = []
        self._failed: set[str] = set()

    def load_root(self, path: str) -> ast.Schema | None:
        try:
            found = self._read(path)
        except _Unreadable as error:
            message = f"cannot read {path!r}: {error}"
        else:
            if found is not None:
                return self._load(path, *found, stack=[])
            message = f"cannot find {path!r}"
        self.diagnostics.append(Diagnostic(path, ast.Span(1, 1, 1, 1), "missing-file", message))
        return None

    def _load(self, display: str, key: str, text: str, stack: list[str]) -> ast.Schema | None:
        if key in self.schemas:
            return self.schemas[key]
        if key in self._failed:
            return None
        try:
            schema = parse(text, display)
        except IdlError as error:
            self.diagnostics.extend(error.diagnostics)
            self._failed.add(key)
            return None
        self.schemas[key] = schema
        self.sources[key] = text
        self.import_keys[key] = []
        stack = [*stack, key]
        lines = text.splitlines()
        for imp in schema.imports:
            self._load_import(schema, key, imp, stack, lines)
        return schema

    def _load_import(
        self, schema: ast.Schema, key: str, imp: ast.Import, stack: list[str], lines: list[str]
    ) -> None:
        line = lines[imp.span.line - 1] if imp.span.line <= len(lines) else ""

        def report(code: str, message: str, hint: str | None = None) -> None:
            self.diagnostics.append(
                Diagnostic(schema.path, imp.span, code, message, hint=hint, source_line=line)
            )

        candidates = [_join(posixpath.dirname(schema.path), imp.path)]
        candidates += [_join(d, imp.path) for d in self._include_dirs]
        for display in candidates:
            try:
                found = self._read(display)
            except _Unreadable as error:
                report("missing-import", f"cannot read imported file {display!r}: {error}")
                return
            if found is None:
                continue
            target_key, text = found
            if target_key in self.import_keys[key]:
                report("duplicate-import", f"{imp.path!r} is imported more than once")
                return
            self.import_keys[key].append(target_key)
            if target_key in stack:
                cycle = [self.schemas[k].path for k in stack[stack.index(target_key) :]]
                report(
                    "import-cycle",
                    "import cycle: " + " -> ".join([*cycle, cycle[0]]),
                    "move the shared declarations into a file both can import",
                )
                return
            self._load(display, target_key, text, stack)
            return
        searched = [posixpath.dirname(schema.path) or ".", *self._include_dirs]
        report(
            "missing-import",
            f"cannot find imported file {imp.path!r}",
            "searched " + ", ".join(searched) + ("" if self._include_dirs else "; add -I DIR"),
        )


def _join(directory: str, relative: str) -> str:
    return posixpath.normpath(posixpath.join(directory, relative)) if directory else relative


def _disk_reader(path: str) -> tuple[str, str] | None:
    candidate = Path(path)
    if not candidate.is_file():
        return None
    try:
        data = candidate.read_bytes()
    except OSError as error:
        raise _Unreadable(error.strerror or type(error).__name__) from None
    try:
        return str(candidate.resolve()), data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise _Unreadable(f"not UTF-8 text (line {line})") from None


def _finish(loader: _Loader, roots: list[ast.Schema]) -> LoadResult:
    from .checker import check  # the checker reads Program; imported here to avoid a cycle

    unique: list[ast.Schema] = []
    for root in roots:
        if all(root is not seen for seen in unique):
            unique.append(root)
    symbols: dict[str, Symbol] = {}
    for schema in loader.schemas.values():
        for decl in schema.declarations:
            symbol = Symbol(f"{schema.package}.{decl.name}", decl, schema)
            symbols.setdefault(symbol.fqn, symbol)
    program = Program(unique, loader.schemas, symbols, loader.sources, loader.import_keys)
    diagnostics = loader.diagnostics + check(program)
    order = {schema.path: index for index, schema in enumerate(loader.schemas.values())}
    diagnostics.sort(
        key=lambda d: (order.get(d.path, len(order)), d.path, d.span.line, d.span.column, d.code)
    )
    return LoadResult(program, diagnostics)


def load(paths: Sequence[str | Path], include_dirs: Sequence[str | Path] = ()) -> LoadResult:
    """Load, resolve and check the schemas at `paths` and everything they import."""
    loader = _Loader(_disk_reader, [_display(d) for d in include_dirs])
    roots = [r for r in (loader.load_root(_display(p)) for p in paths) if r is not None]
    return _finish(loader, roots)


def _display(path: str | Path) -> str:
    text = os.fspath(path)
    return posixpath.normpath(text.replace(os.sep, "/")) if text else text


def load_checked(paths: Sequence[str | Path], include_dirs: Sequence[str | Path] = ()) -> Program:
    """Like `load`, but raise `IdlError` with every error diagnostic unless the program is ok."""
    result = load(paths, include_dirs)
    if not result.ok:
        raise IdlError([d for d in result.diagnostics if d.severity is Severity.ERROR])
    return result.program


def load_text(
    text: str,
    path: str = "schema.rpc",
    files: Mapping[str, str] | None = None,
    include_dirs: Sequence[str] = (),
) -> LoadResult:
    """Load a schema held in memory; `files` maps further in-memory paths to their text."""
    memory = {posixpath.normpath(k): v for k, v in (files or {}).items()}
    memory[posixpath.normpath(path)] = text

    def read(display: str) -> tuple[str, str] | None:
        key = posixpath.normpath(display)
        return (key, memory[key]) if key in memory else None

    loader = _Loader(read, list(include_dirs))
    root = loader.load_root(path)
    return _finish(loader, [root] if root is not None else [])
