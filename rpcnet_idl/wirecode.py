"""Python source fragments for one field type: its annotation, default, encoder and decoder.

`TypeCoder` turns an `ast.TypeRef` into expressions that the templates paste into straight-line
generated code (no reflection at run time). Decoders are single expressions over a variable
that either produce the Python value or call the module's ``_fail`` helper, which raises
`rpcnet_runtime.WireDecodeError` naming the field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import ast

__all__ = ["INT_RANGES", "Resolved", "TypeCoder"]

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

    def decode(self, t: ast.TypeRef, expr: str, path: str, depth: int = 0) -> str:
        """An expression turning the wire value `expr` into a Python value, or failing."""
        self.uses.add("fail")
        fail = f"_fail({path!r}, {self.describe(t)!r}, {expr})"
        if isinstance(t, ast.ScalarType):
            name = t.name
            if name in _SIMPLE:
                return f"{expr} if type({expr}) is {_SIMPLE[name][2]} else {fail}"
            if name in INT_RANGES:
                low, high = INT_RANGES[name]
                return f"{expr} if type({expr}) is int and {low} <= {expr} <= {high} else {fail}"
            if name in ("float32", "float64"):
                return (
                    f"{expr} if type({expr}) is float else "
                    f"float({expr}) if type({expr}) is int else {fail}"
                )
            if name == "timestamp":
                self.uses.add("datetime")
                return f"{expr} if type({expr}) is _datetime else {fail}"
            self.uses.add("duration")
            return f"_duration_from_wire({expr}) if type({expr}) is int else {fail}"
        if isinstance(t, ast.NamedType):
            resolved = self._resolve(t)
            if resolved.kind == "enum":
                return (
                    f"{resolved.lookup}.get({expr}, {resolved.zero}) "
                    f"if type({expr}) is int else {fail}"
                )
            return f"{resolved.ref}.from_wire({expr}) if type({expr}) is dict else {fail}"
        item = f"_x{depth}"
        if isinstance(t, ast.ListType):
            inner = self.decode(t.element, item, path + "[item]", depth + 1)
            return f"[({inner}) for {item} in {expr}] if type({expr}) is list else {fail}"
        key, value = f"_k{depth}", f"_x{depth}"
        inner_key = self.decode(t.key, key, path + "[key]", depth + 1)
        inner_value = self.decode(t.value, value, path + "[value]", depth + 1)
        return (
            f"{{({inner_key}): ({inner_value}) for {key}, {value} in {expr}.items()}} "
            f"if type({expr}) is dict else {fail}"
        )
