"""View-models of a checked `Program` for the code generator's templates.

`build_modules(program)` returns one `ModuleModel` per schema file: every Python name escaped,
every annotation, default, encoder and decoder already written as a source fragment, every
policy turned into the `MethodPolicy` expression the runtime reads. The templates only lay these
out; nothing here renders or touches the disk.

The work is split by concern: `model_types` (the view-model classes), `model_context` (names,
references, resolution), `model_decls` (types), `model_services` (services and policies).
"""

from __future__ import annotations

from pathlib import PurePath

from . import ast, naming
from .loader import Program
from .model_context import fail as _fail
from .model_decls import DeclarationBuilder
from .model_services import ServiceBuilder
from .model_types import (
    EnumModel,
    EnumValueModel,
    FieldModel,
    MethodModel,
    ModuleModel,
    ServiceModel,
    TypeModel,
)

__all__ = [
    "EnumModel",
    "EnumValueModel",
    "FieldModel",
    "MethodModel",
    "ModuleModel",
    "ServiceModel",
    "TypeModel",
    "build_modules",
]


def module_names(program: Program) -> dict[str, str]:
    """Schema key -> generated module name; two schemas with one module name are an error."""
    names: dict[str, str] = {}
    seen: dict[str, ast.Schema] = {}
    for key in sorted(program.schemas):
        schema = program.schemas[key]
        name = naming.module_name(PurePath(schema.path).stem)
        if name in seen:
            other = seen[name].path
            raise _fail(
                program,
                schema,
                schema.package_span,
                "module-collision",
                f"{schema.path} and {other} would both generate {name}.py; rename one of them",
            )
        seen[name] = schema
        names[key] = name
    return names


class _ModuleBuilder(DeclarationBuilder, ServiceBuilder):
    """One schema's `ModuleModel`: its declarations in order, then a check for name clashes."""

    def build(self) -> ModuleModel:
        model = self.model
        for decl in self.schema.declarations:
            if isinstance(decl, ast.Enum):
                model.enums.append(self.enum_model(decl))
        for decl in self.schema.declarations:
            if isinstance(decl, ast.Message | ast.Union | ast.Error):
                model.types.append(self.type_model(decl))
        for decl in self.schema.declarations:
            if isinstance(decl, ast.Service):
                model.services.append(self.service(decl))
        self.check_collisions()
        model.imports = sorted(self._imports.items())
        model.uses = set(self.coder.uses)
        model.helpers = [code for _, code in self.coder.helpers.values()]
        if any(t.kind == "error" for t in model.types):
            model.uses.add("errors")
        return model

    def check_collisions(self) -> None:
        model = self.model
        owners: dict[str, str] = {}
        exports: list[str] = []

        def claim(name: str, what: str, span: ast.Span) -> None:
            if name in owners:
                raise self.fail(span, "name-collision",
                    f"{what} and {owners[name]} would both be named {name} in {model.module}.py",
                )  # fmt: skip
            owners[name] = what
            if not name.startswith("_"):
                exports.append(name)

        spans = {d.name: d.name_span for d in self.schema.declarations}
        for e in model.enums:
            claim(e.py_name, f"enum {e.name}", spans[e.name])
        for t in model.types:
            claim(t.py_name, f"{t.kind} {t.name}", spans[t.name])
        for s in model.services:
            span = spans[s.name]
            claim(s.const, f"the descriptor of service {s.name}", span)
            claim(s.client, f"the client of service {s.name}", span)
            claim(s.base, f"the skeleton of service {s.name}", span)
            for m in s.methods:
                claim(m.const, f"the descriptor of {s.name}.{m.name}", span)
        model.exports = sorted(exports)


def build_modules(program: Program) -> list[ModuleModel]:
    """One view-model per loaded schema, ordered by module name."""
    modules = module_names(program)
    built = [_ModuleBuilder(program, program.schemas[key], modules).build() for key in modules]
    return sorted(built, key=lambda m: m.module)
