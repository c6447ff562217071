"""``[tool.rpcnet.lint]`` in pyproject.toml: which lint rules run, and per-file exceptions.

```toml
[tool.rpcnet.lint]
enable = ["PACKAGE_VERSION_SUFFIX", "comments"]   # rule ids or category names
disable = ["ENUM_ZERO_VALUE_FIRST"]

[tool.rpcnet.lint.ignore]
"legacy/*.rpc" = ["FIELD_LOWER_SNAKE_CASE"]      # glob (relative to the pyproject's folder)
"vendor/**" = ["ALL"]
```
The rules that run are the default ones, plus `enable`, minus `disable`. A category name stands
for every rule of the category; ``ALL`` for every rule.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LintConfig", "LintConfigError", "find_config", "load_config", "parse_config"]


class LintConfigError(Exception):
    """The configuration cannot be used: unreadable file, bad types or unknown rule ids."""


@dataclass(frozen=True)
class LintConfig:
    enable: frozenset[str] = frozenset()
    """Rule ids, category names or ALL, as written (upper-cased)."""
    disable: frozenset[str] = frozenset()
    ignore: tuple[tuple[str, frozenset[str]], ...] = ()
    """(glob, rule ids) pairs, in file order."""
    root: Path = field(default_factory=Path.cwd)
    """The folder globs are relative to: the pyproject's folder."""
    source: str | None = None
    """The file the configuration came from, if any."""

    def selected(self, rules: Mapping[str, tuple[str, bool]]) -> set[str]:
        """The rule ids that run; `rules` maps id -> (category, enabled by default)."""
        on = {rule for rule, (_, default) in rules.items() if default}
        on |= _expand(self.enable, rules)
        on -= _expand(self.disable, rules)
        return on

    def ignored(self, path: str, rules: Mapping[str, tuple[str, bool]]) -> set[str]:
        """The rule ids switched off for the schema file `path`."""
        names = _candidate_names(path, self.root)
        out: set[str] = set()
        for pattern, ids in self.ignore:
            if any(fnmatch.fnmatchcase(name, pattern) for name in names):
                out |= _expand(ids, rules)
        return out

    def validate(self, rules: Mapping[str, tuple[str, bool]]) -> None:
        """Raise `LintConfigError` for a rule id or category that does not exist."""
        known = set(rules) | {category.upper() for category, _ in rules.values()} | {"ALL"}
        words = set(self.enable) | set(self.disable)
        for _, ids in self.ignore:
            words |= ids
        unknown = sorted(words - known)
        if unknown:
            where = f" in {self.source}" if self.source else ""
            raise LintConfigError(
                f"unknown lint rule or category{where}: {', '.join(unknown)}; "
                "run `rpcnet-gen lint --list-rules` for the list"
            )


def _expand(words: Iterable[str], rules: Mapping[str, tuple[str, bool]]) -> set[str]:
    out: set[str] = set()
    for word in words:
        if word == "ALL":
            out |= set(rules)
        elif word in rules:
            out.add(word)
        else:
            out |= {rule for rule, (category, _) in rules.items() if category.upper() == word}
    return out


def _candidate_names(path: str, root: Path) -> list[str]:
    names = [Path(path).as_posix()]
    with contextlib.suppress(ValueError):
        names.append(Path(os.path.abspath(path)).relative_to(root.resolve()).as_posix())
    return names


def _strings(value: object, what: str, source: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise LintConfigError(f"{source}: {what} must be a list of strings")
    return frozenset(v.upper() for v in value)


def parse_config(data: Mapping[str, object], root: Path, source: str = "") -> LintConfig:
    """The `[tool.rpcnet.lint]` table `data` as a `LintConfig` (not yet validated)."""
    where = source or "[tool.rpcnet.lint]"
    allowed = {"enable", "disable", "ignore"}
    extra = sorted(set(data) - allowed)
    if extra:
        raise LintConfigError(f"{where}: unknown key(s) {', '.join(extra)} in [tool.rpcnet.lint]")
    ignore_table = data.get("ignore", {})
    if not isinstance(ignore_table, dict):
        raise LintConfigError(f"{where}: [tool.rpcnet.lint.ignore] must be a table")
    ignore = tuple(
        (str(pattern), _strings(ids, f'ignore."{pattern}"', where))
        for pattern, ids in ignore_table.items()
    )
    return LintConfig(
        enable=_strings(data.get("enable", []), "enable", where),
        disable=_strings(data.get("disable", []), "disable", where),
        ignore=ignore,
        root=root,
        source=source or None,
    )


def load_config(path: Path) -> LintConfig:
    """Read `[tool.rpcnet.lint]` from the pyproject.toml at `path` (empty if absent)."""
    try:
        with path.open("rb") as f:
            document = tomllib.load(f)
    except OSError as exc:
        raise LintConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise LintConfigError(f"{path}: not valid TOML: {exc}") from exc
    table: object = document.get("tool", {})
    for key in ("rpcnet", "lint"):
        table = table.get(key, {}) if isinstance(table, dict) else None
    if not isinstance(table, dict):
        raise LintConfigError(f"{path}: [tool.rpcnet.lint] must be a table")
    return parse_config(table, path.parent.resolve(), str(path))


def find_config(start: Path) -> Path | None:
    """The nearest pyproject.toml in `start` or a parent folder, or None."""
    here = start.resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None
