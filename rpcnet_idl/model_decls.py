"""View-models of a module's enums, messages, unions and errors (their fields included)."""

from __future__ import annotations

from . import ast, naming
from .model_context import ModuleContext
from .model_types import EnumModel, EnumValueModel, FieldModel, TypeModel
from .policies import annotation
from .wirecode import pystr

__all__ = ["DeclarationBuilder"]

_STATUS_NAMES = frozenset(
    {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED",
    }
)  # fmt: skip


class DeclarationBuilder(ModuleContext):
    """Builds the type declarations' view-models."""

    def field(self, owner: str, kind: str, f: ast.Field) -> FieldModel:
        coder = self.coder
        py = self.field_py_name(self.schema, kind, f.name)
        if py.startswith("__"):
            raise self.fail(
                f.name_span, "bad-name", f"field names may not start with '__': {f.name}"
            )
        base = coder.annotation(f.type)
        nullable = kind == "union" or coder.nullable(f.type, f.optional)
        path = f"{owner}.{f.name}"
        quoted = pystr(path)
        branches = tuple(
            (condition, value.format(path=quoted) if not condition else value)
            for condition, value in coder.branches(f.type)
        )
        decode = (branches, coder.fail(f.type, quoted))
        encode = coder.encode(f.type, f"self.{py}")
        if nullable:
            return FieldModel(
                f.name, py, f.number, f"{base} | None", "None", True, "None", f"{base} | None",
                py, encode, *decode, "None", f.doc,
            )  # fmt: skip
        if isinstance(f.type, ast.ListType | ast.MapType):
            factory = "list" if isinstance(f.type, ast.ListType) else "dict"
            empty = "[]" if factory == "list" else "{}"
            return FieldModel(
                f.name, py, f.number, base, f"_dataclasses.field(default_factory={factory})",
                False, "None", f"{base} | None", f"{empty} if {py} is None else {py}",
                encode, *decode, empty, f.doc,
            )  # fmt: skip
        default = coder.default(f.type)
        return FieldModel(
            f.name, py, f.number, base, default, False, default, base, py, encode, *decode,
            default, f.doc,
        )  # fmt: skip

    def type_model(self, decl: ast.Message | ast.Union | ast.Error) -> TypeModel:
        kind = {ast.Message: "message", ast.Union: "union", ast.Error: "error"}[type(decl)]
        fields = decl.variants if isinstance(decl, ast.Union) else decl.fields
        models = tuple(self.field(decl.name, kind, f) for f in fields)
        status, pushback = "UNKNOWN", ""
        if isinstance(decl, ast.Error):
            found = annotation(decl.annotations, "status")
            if found is not None and found.positional:
                value = found.positional[0]
                if isinstance(value, ast.NameValue) and value.name in _STATUS_NAMES:
                    status = value.name
            for f, m in zip(decl.fields, models, strict=True):
                if f.name == "retry_after" and f.type == ast.ScalarType("duration", f.type.span):
                    pushback = f"self.{m.py_name}.total_seconds()"
                    if m.nullable:
                        pushback = f"None if self.{m.py_name} is None else {pushback}"
        return TypeModel(
            kind, decl.name, naming.type_name(decl.name), f"{self.schema.package}.{decl.name}",
            models, decl.doc, status, pushback,
        )  # fmt: skip

    def enum_model(self, decl: ast.Enum) -> EnumModel:
        py = naming.type_name(decl.name)
        values = tuple(
            EnumValueModel(naming.enum_value_name(v.name), v.number, v.doc) for v in decl.values
        )
        if not values:
            raise self.fail(decl.span, "empty-enum", f"enum {decl.name} has no values")
        return EnumModel("enum", decl.name, py, f"_{py}_by_number", values, decl.doc)
