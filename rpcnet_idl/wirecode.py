"""Python source fragments for one field type: its annotation, default, encoder and decoder.

`TypeCoder` turns an `ast.TypeRef` into expressions that the templates paste into straight-line
generated code (no reflection at run time). Decoders are single expressions over a variable
that either produce the Python value or call the module's ``_fail`` helper, which raises
`rpcnet_runtime.WireDecodeError` naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from . import ast

__all__ = ["INT_RANGES", "Resolved", "TypeCoder", "pystr"]


def pystr(value: str) -> str:
    """A Python string literal of `value`, double-quoted as black writes it."""
    text = repr(value)
    if text.startswith("'") and '"' not in value:
        text = '"' + text[1:-1].replace("\\'", "'") + '"'
    return text


#: Inclusive bounds of the integer scalars.
INT_RANGES = {
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
}

_SIMPLE = {  # scalar -> (annotation, default, exact wire type, description)
    "bool": ("bool", "False", "bool", "a bool"),
    "string": ("str", '""', "str", "a string"),
    "bytes": ("bytes", 'b""', "bytes", "bytes"),
}


@dataclass(frozen=True, slots=True)
class Resolved:
    """A named type as the current module refers to it."""

    kind: str
    """``enum``, ``message``, ``union`` or ``error``."""
    ref: str
    """The Python expression naming the class here (``Task`` or ``_common.Money``)."""
    lookup: str = ""
    """Enums: the expression naming the number -> member dict."""
    zero: str = ""
    """Enums: the expression naming the first value."""


class TypeCoder:
    """Code fragments for field types, as seen from one generated module."""

    def __init__(self, resolve: Callable[[ast.NamedType], Resolved]) -> None:
        self._resolve = resolve
        self.uses: set[str] = set()
        """Helpers the fragments need: ``datetime``, ``timedelta``, ``duration``, ``fail``."""
        self.helpers: dict[str, tuple[str, str]] = {}
        """Container annotation -> (name, source) of its decoding function, in order made."""

    # --- annotations and defaults ---------------------------------------------------------

    def annotation(self, t: ast.TypeRef) -> str:
        """The Python type of a value of `t` (without the ``| None`` of optional fields)."""
        if isinstance(t, ast.ScalarType):
            name = t.name
            if name in _SIMPLE:
                return _SIMPLE[name][0]
            if name in INT_RANGES:
                return "int"
            if name in ("float32", "float64"):
                return "float"
            if name == "timestamp":
                self.uses.add("datetime")
                return "_datetime"
            self.uses.add("timedelta")
            return "_timedelta"
        if isinstance(t, ast.NamedType):
            return self._resolve(t).ref
        if isinstance(t, ast.ListType):
            return f"list[{self.annotation(t.element)}]"
        return f"dict[{self.annotation(t.key)}, {self.annotation(t.value)}]"

    def nullable(self, t: ast.TypeRef, optional: bool) -> bool:
        """True when a field of `t` is ``T | None = None`` (optional, message, union, timestamp)."""
        if optional:
            return True
        if isinstance(t, ast.ScalarType):
            return t.name == "timestamp"
        if isinstance(t, ast.NamedType):
            return self._resolve(t).kind != "enum"
        return False

    def default(self, t: ast.TypeRef) -> str:
        """The default of a non-nullable field: an immutable value expression."""
        if isinstance(t, ast.ScalarType):
            if t.name in _SIMPLE:
                return _SIMPLE[t.name][1]
            if t.name in INT_RANGES:
                return "0"
            if t.name in ("float32", "float64"):
                return "0.0"
            self.uses.add("timedelta")
            return "_timedelta()"
        if isinstance(t, ast.NamedType):
            return self._resolve(t).zero
        return "[]" if isinstance(t, ast.ListType) else "{}"

    def describe(self, t: ast.TypeRef) -> str:
        """How a decode error names the expected value."""
        if isinstance(t, ast.ScalarType):
            if t.name in _SIMPLE:
                return _SIMPLE[t.name][3]
            if t.name in INT_RANGES:
                return f"an {t.name}" if t.name.startswith("i") else f"a {t.name}"
            if t.name in ("float32", "float64"):
                return "a float"
            return "a timestamp" if t.name == "timestamp" else "a duration (int nanoseconds)"
        if isinstance(t, ast.NamedType):
            kind = self._resolve(t).kind
            return "an enum number" if kind == "enum" else "a map"
        return "an array" if isinstance(t, ast.ListType) else "a map"

    # --- encoding -------------------------------------------------------------------------

    def encode(self, t: ast.TypeRef, expr: str, depth: int = 0) -> str:
        """An expression turning the Python value `expr` into its wire value."""
        if isinstance(t, ast.ScalarType):
            if t.name == "duration":
                self.uses.add("duration")
                return f"_duration_to_wire({expr})"
            return expr
        if isinstance(t, ast.NamedType):
            return expr if self._resolve(t).kind == "enum" else f"{expr}.to_wire()"
        item = f"_x{depth}"
        if isinstance(t, ast.ListType):
            inner = self.encode(t.element, item, depth + 1)
            return expr if inner == item else f"[{inner} for {item} in {expr}]"
        key, value = f"_k{depth}", f"_x{depth}"
        inner_key = self.encode(t.key, key, depth + 1)
        inner_value = self.encode(t.value, value, depth + 1)
        if inner_key == key and inner_value == value:
            return expr
        return f"{{{inner_key}: {inner_value} for {key}, {value} in {expr}.items()}}"

    # --- decoding -------------------------------------------------------------------------

    def branches(self, t: ast.TypeRef, var: str = "_v") -> list[tuple[str, str]]:
        """``(condition, value)`` pairs that accept the wire value `var` of a scalar or named
        type; for a container, one pair ``("", helper call)`` whose helper checks it all."""
        if isinstance(t, ast.ScalarType):
            name = t.name
            if name in _SIMPLE:
                return [(f"type({var}) is {_SIMPLE[name][2]}", var)]
            if name in INT_RANGES:
                low, high = INT_RANGES[name]
                return [(f"type({var}) is int and {low} <= {var} <= {high}", var)]
            if name in ("float32", "float64"):
                return [(f"type({var}) is float", var), (f"type({var}) is int", f"float({var})")]
            if name == "timestamp":
                self.uses.add("datetime")
                return [(f"type({var}) is _datetime", var)]
            self.uses.add("duration")
            return [(f"type({var}) is int", f"_duration_from_wire({var})")]
        if isinstance(t, ast.NamedType):
            resolved = self._resolve(t)
            if resolved.kind == "enum":
                return [(f"type({var}) is int", f"{resolved.lookup}.get({var}, {resolved.zero})")]
            return [(f"type({var}) is dict", f"{resolved.ref}.from_wire({var})")]
        return [("", f"{self.helper(t)}({var}, {{path}})")]

    def fail(self, t: ast.TypeRef, path: str, var: str = "_v") -> str:
        """The call that rejects wire value `var` of `t`; `path` is a Python expression."""
        self.uses.add("fail")
        return f"_fail({path}, {pystr(self.describe(t))}, {var})"

    @staticmethod
    def _identity(options: list[tuple[str, str]]) -> bool:
        """True when a wire value that passes the check is already the Python value."""
        return len(options) == 1 and bool(options[0][0]) and options[0][1] in ("_x", "_k")

    def _check_lines(
        self, t: ast.TypeRef, options: list[tuple[str, str]], suffix: str, var: str
    ) -> list[str]:
        """Statements (at loop-body depth) rejecting `var` unless it passes its check."""
        condition = options[0][0]
        simple = re.fullmatch(r"type\((\w+)\) is (\w+)", condition)
        negated = f"not ({condition})"
        if simple:
            negated = f"type({simple[1]}) is not {simple[2]}"
        return [
            f"        if {negated}:",
            f"            {self.fail(t, f'path + {suffix}', var)}",
        ]

    def _branch_lines(
        self, t: ast.TypeRef, options: list[tuple[str, str]], store: str, suffix: str, var: str
    ) -> list[str]:
        """Statements (at loop-body depth) storing the decoded `var` with `store`."""
        path = f"path + {suffix}"
        lines: list[str] = []
        for index, (condition, value) in enumerate(options):
            if not condition:
                lines.append("        " + store.format(value.format(path=path)))
                return lines
            lines.append(f"        {'if' if index == 0 else 'elif'} {condition}:")
            lines.append("            " + store.format(value))
        lines += ["        else:", f"            {self.fail(t, path, var)}"]
        return lines

    def helper(self, t: ast.ListType | ast.MapType) -> str:
        """The name of the module-level function decoding container type `t`, made on demand."""
        key = self.annotation(t)
        found = self.helpers.get(key)
        if found is not None:
            return found[0]
        name = f"_decode_{len(self.helpers) + 1}"
        self.helpers[key] = (name, "")  # reserve the name before building nested helpers
        self.uses.add("fail")
        head = [
            f"def {name}(value: _Any, path: str) -> {key}:",
            f'    """Decode a wire `{key}`; `path` names the field in errors."""',
        ]
        if isinstance(t, ast.ListType):
            head += ["    if type(value) is not list:", '        _fail(path, "an array", value)']
            element = self.branches(t.element, "_x")
            if self._identity(element):
                body = ["    for _x in value:"]
                body += self._check_lines(t.element, element, '"[item]"', "_x")
                body += [f"    out: {key} = value", "    return out"]
            else:
                body = [f"    out: {key} = []", "    for _x in value:"]
                body += self._branch_lines(t.element, element, "out.append({})", '"[item]"', "_x")
                body.append("    return out")
        else:
            head += ["    if type(value) is not dict:", '        _fail(path, "a map", value)']
            keys = self.branches(t.key, "_k")
            values = self.branches(t.value, "_x")
            if self._identity(keys) and self._identity(values):
                body = ["    for _k, _x in value.items():"]
                body += self._check_lines(t.key, keys, '"[key]"', "_k")
                body += self._check_lines(t.value, values, '"[value]"', "_x")
                body += [f"    out: {key} = value", "    return out"]
            else:
                body = [f"    out: {key} = {{}}", "    for _k, _x in value.items():"]
                body += self._branch_lines(t.key, keys, "_key = {}", '"[key]"', "_k")
                body += self._branch_lines(t.value, values, "out[_key] = {}", '"[value]"', "_x")
                body.append("    return out")
        code = "\n".join(head + body) + "\n"
        self.helpers[key] = (name, code)
        return name
