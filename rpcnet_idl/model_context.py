"""The shared state of building one module's view-model: Python names, cross-module references,
type resolution and generation-time errors."""

from __future__ import annotations

from . import ast, naming
from .diagnostics import Diagnostic, IdlError
from .loader import Program
from .model_types import ModuleModel
from .wirecode import Resolved, TypeCoder

__all__ = ["ModuleContext", "fail"]

#: Names a generated module defines or imports for itself; sibling module aliases avoid them.
_HELPER_NAMES = frozenset(
    {
        "_abc", "_dataclasses", "_enum", "_AsyncIterable", "_AsyncIterator", "_Mapping",
        "_datetime", "_timedelta", "_Any", "_ClassVar", "_NoReturn", "_Self", "_rt",
        "_duration_from_wire", "_duration_to_wire", "_fail", "_unimplemented", "_obj", "_get",
        "_v",
    }
)  # fmt: skip


def fail(program: Program, schema: ast.Schema, span: ast.Span, code: str, message: str) -> IdlError:
    line = program.source_line(schema, span.line)
    return IdlError([Diagnostic(schema.path, span, code, message, source_line=line)])


class ModuleContext:
    """One schema's module being built: its names, imports and type coder."""

    def __init__(self, program: Program, schema: ast.Schema, modules: dict[str, str]) -> None:
        self.program = program
        self.schema = schema
        self.modules = modules
        self.key = program.key_of(schema)
        self.model = ModuleModel(
            source=schema.path,
            module=modules[self.key],
            package=schema.package,
            doc=schema.doc,
        )
        self.coder = TypeCoder(self.resolve)
        self._imports: dict[str, str] = {}
        self._type_names: dict[str, frozenset[str]] = {}
        self._field_taken: dict[tuple[str, str], frozenset[str]] = {}

    def fail(self, span: ast.Span, code: str, message: str) -> IdlError:
        return fail(self.program, self.schema, span, code, message)

    # --- names ----------------------------------------------------------------------------

    def type_names(self, schema: ast.Schema) -> frozenset[str]:
        key = self.program.key_of(schema)
        names = self._type_names.get(key)
        if names is None:
            names = frozenset(naming.type_name(d.name) for d in schema.declarations)
            self._type_names[key] = names
        return names

    def field_py_name(self, schema: ast.Schema, kind: str, name: str) -> str:
        cache_key = (self.program.key_of(schema), kind)
        taken = self._field_taken.get(cache_key)
        if taken is None:  # built once per schema and kind, not once per field
            reserved = {
                "message": naming.MESSAGE_RESERVED,
                "union": naming.UNION_RESERVED,
                "error": naming.ERROR_RESERVED,
            }[kind]
            taken = reserved | self.type_names(schema) | {"self", "cls"}
            self._field_taken[cache_key] = taken
        return naming.field_name(name, taken)

    def ref(self, schema: ast.Schema, py_name: str) -> str:
        """`py_name` of `schema` as this module spells it, importing its module if needed."""
        key = self.program.key_of(schema)
        if key == self.key:
            return py_name
        module = self.modules[key]
        alias = "_" + module
        if alias in _HELPER_NAMES or alias.startswith("_decode_") or alias.endswith("_by_number"):
            alias += "_"
        self._imports[module] = alias
        return f"{alias}.{py_name}"

    def resolve(self, ref: ast.NamedType) -> Resolved:
        symbol = self.program.resolve(self.schema, ref)
        if symbol is None:
            raise self.fail(ref.span, "unknown-type", f"unknown type {ref.name}")
        decl = symbol.decl
        py = naming.type_name(decl.name)
        if isinstance(decl, ast.Enum):
            if not decl.values:
                raise fail(
                    self.program,
                    symbol.schema,
                    decl.span,
                    "empty-enum",
                    f"enum {decl.name} has no values",
                )
            zero = naming.enum_value_name(decl.values[0].name)
            return Resolved(
                "enum",
                self.ref(symbol.schema, py),
                lookup=self.ref(symbol.schema, f"_{py}_by_number"),
                zero=f"{self.ref(symbol.schema, py)}.{zero}",
            )
        kind = {ast.Message: "message", ast.Union: "union", ast.Error: "error"}.get(type(decl))
        if kind is None:
            raise self.fail(ref.span, "not-a-type", f"{ref.name} is a service, not a type")
        return Resolved(kind, self.ref(symbol.schema, py))
