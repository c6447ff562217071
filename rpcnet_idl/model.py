"""View-models of a checked `Program` for the code generator's templates.

`build_modules(program)` returns one `ModuleModel` per schema file: every Python name escaped,
every annotation, default, encoder and decoder already written as a source fragment, every
policy turned into the `MethodPolicy` expression the runtime reads. The templates only lay these
out; nothing here renders or touches the disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath

from . import ast, naming
from .diagnostics import Diagnostic, IdlError
from .loader import Program
from .policies import MethodPolicySpec, annotation, method_policy
from .wirecode import Resolved, TypeCoder, pystr

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

_KINDS = {
    (False, False): "UNARY_UNARY",
    (False, True): "UNARY_STREAM",
    (True, False): "STREAM_UNARY",
    (True, True): "STREAM_STREAM",
}
_STATUS_NAMES = frozenset(
    {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED",
    }
)  # fmt: skip

#: Names a generated module defines or imports for itself; sibling module aliases avoid them.
_HELPER_NAMES = frozenset(
    {
        "_abc", "_dataclasses", "_enum", "_AsyncIterable", "_AsyncIterator", "_Mapping",
        "_datetime", "_timedelta", "_Any", "_ClassVar", "_NoReturn", "_Self", "_rt",
        "_duration_from_wire", "_duration_to_wire", "_fail", "_unimplemented", "_obj", "_get",
        "_v",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class FieldModel:
    name: str
    """As written in the schema."""
    py_name: str
    number: int
    annotation: str
    """The attribute's type, ``| None`` included where the field is nullable."""
    default: str
    """The dataclass default: a value, or ``_dataclasses.field(default_factory=...)``."""
    nullable: bool
    """True when None means absent (left out of the wire map)."""
    param_default: str
    """The default of an error's ``__init__`` parameter (``None`` for containers)."""
    param_annotation: str
    init_value: str
    """An error's ``__init__``: the expression assigned to the attribute."""
    encode: str
    """The wire value, an expression over ``self.<py_name>``."""
    branches: tuple[tuple[str, str], ...]
    """``(condition, value)``: decode wire value ``_v`` as `value` when `condition` holds; a
    last pair with condition "" applies otherwise (containers: a helper that checks it all)."""
    reject: str
    """The ``_fail(...)`` call when no condition holds (unused after an unconditional pair)."""
    absent: str
    """The value of the field when the wire map lacks it."""
    doc: str | None


@dataclass(frozen=True, slots=True)
class TypeModel:
    """A message, union or error."""

    kind: str
    name: str
    py_name: str
    fqn: str
    fields: tuple[FieldModel, ...]
    doc: str | None
    status: str = "UNKNOWN"
    """Errors: the `Status` member name of ``@status``."""
    pushback: str = ""
    """Errors: the body expression of ``pushback_seconds`` ("" when not overridden)."""


@dataclass(frozen=True, slots=True)
class EnumValueModel:
    py_name: str
    number: int
    doc: str | None


@dataclass(frozen=True, slots=True)
class EnumModel:
    kind: str
    name: str
    py_name: str
    lookup: str
    values: tuple[EnumValueModel, ...]
    doc: str | None


@dataclass(frozen=True, slots=True)
class MethodModel:
    name: str
    py_name: str
    const: str
    path: str
    kind: str
    client_streams: bool
    server_streams: bool
    request: str
    response: str
    errors: tuple[str, ...]
    policy: str
    """The `MethodPolicy(...)` expression."""
    doc: str | None
    deprecated: str | None


@dataclass(frozen=True, slots=True)
class ServiceModel:
    name: str
    fqn: str
    const: str
    client: str
    base: str
    methods: tuple[MethodModel, ...]
    doc: str | None


@dataclass(slots=True)
class ModuleModel:
    """One generated module."""

    source: str
    """The schema path as given to the tool."""
    module: str
    package: str
    doc: str | None
    imports: list[tuple[str, str]] = field(default_factory=list)
    """``(module, alias)`` of the sibling generated modules this one uses."""
    enums: list[EnumModel] = field(default_factory=list)
    types: list[TypeModel] = field(default_factory=list)
    services: list[ServiceModel] = field(default_factory=list)
    exports: list[str] = field(default_factory=list)
    uses: set[str] = field(default_factory=set)
    helpers: list[str] = field(default_factory=list)
    """Source of the module-level container decoding functions."""


def _fail(
    program: Program, schema: ast.Schema, span: ast.Span, code: str, message: str
) -> IdlError:
    line = program.source_line(schema, span.line)
    return IdlError([Diagnostic(schema.path, span, code, message, source_line=line)])


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


class _ModuleBuilder:
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
        return _fail(self.program, self.schema, span, code, message)

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
                raise _fail(
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

    # --- declarations ---------------------------------------------------------------------

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

    def named(self, t: ast.TypeRef, what: str) -> str:
        if not isinstance(t, ast.NamedType):
            raise self.fail(t.span, "bad-rpc-type", f"an rpc {what} must be a message or union")
        resolved = self.resolve(t)
        if resolved.kind not in ("message", "union"):
            raise self.fail(t.span, "bad-rpc-type", f"an rpc {what} must be a message or union")
        return resolved.ref

    def error_ref(self, fqn: str, span: ast.Span) -> str:
        symbol = self.program.symbols.get(fqn)
        if symbol is None or not isinstance(symbol.decl, ast.Error):
            raise self.fail(span, "unknown-type", f"unknown error {fqn}")
        return self.ref(symbol.schema, naming.type_name(symbol.decl.name))

    def policy(self, spec: MethodPolicySpec, method: ast.Method, request: ast.TypeRef) -> str:
        args: list[str] = []
        if spec.timeout is not None:
            args.append(f"timeout={spec.timeout!r}")
        if spec.attempt_timeout is not None:
            args.append(f"attempt_timeout={spec.attempt_timeout!r}")
        if spec.idempotent:
            args.append("idempotent=True")
        if spec.key_field is not None:
            key = self.key_attribute(request, spec.key_field)
            args.append(f"idempotency_key_field={pystr(key)}")
        if spec.retry is not None:
            r = spec.retry
            retry = [
                f"max_attempts={r.attempts!r}",
                f"initial_backoff={r.initial_backoff!r}",
                f"max_backoff={r.max_backoff!r}",
                f"backoff_multiplier={r.multiplier!r}",
            ]
            if r.on_statuses:
                statuses = ", ".join(f"_rt.Status.{s}" for s in r.on_statuses)
                retry.append(f"retryable_statuses=frozenset({{{statuses}}})")
            if r.on_errors:
                errors = [self.error_ref(e, method.span) for e in r.on_errors]
                tuple_ = f"({errors[0]},)" if len(errors) == 1 else f"({', '.join(errors)})"
                retry.append(f"retryable_errors={tuple_}")
            args.append(f"retry=_rt.RetryPolicy({', '.join(retry)})")
        if spec.hedge is not None:
            h = spec.hedge
            statuses = ", ".join(f"_rt.Status.{s}" for s in h.non_fatal)
            extra = f", non_fatal_statuses=frozenset({{{statuses}}})" if statuses else ""
            hedge = f"max_attempts={h.attempts!r}, delay={h.delay!r}{extra}"
            args.append(f"hedge=_rt.HedgePolicy({hedge})")
        if spec.deprecated is not None:
            args.append(f"deprecated={pystr(spec.deprecated)}")
        return f"_rt.MethodPolicy({', '.join(args)})"

    def key_attribute(self, request: ast.TypeRef, key: str) -> str:
        if isinstance(request, ast.NamedType):
            symbol = self.program.resolve(self.schema, request)
            if symbol is not None and isinstance(symbol.decl, ast.Message):
                return self.field_py_name(symbol.schema, "message", key)
        return key

    def service(self, decl: ast.Service) -> ServiceModel:
        fqn = f"{self.schema.package}.{decl.name}"
        py = naming.type_name(decl.name)
        methods: list[MethodModel] = []
        for m in decl.methods:
            spec = method_policy(self.program, self.schema, decl, m)
            errors = tuple(self.error_ref(self.resolve_fqn(t), t.span) for t in m.throws)
            methods.append(
                MethodModel(
                    name=m.name,
                    py_name=naming.method_name(m.name),
                    const=naming.constant_name(decl.name, m.name),
                    path=f"{fqn}/{m.name}",
                    kind=_KINDS[(m.request_stream, m.response_stream)],
                    client_streams=m.request_stream,
                    server_streams=m.response_stream,
                    request=self.named(m.request, "request"),
                    response=self.named(m.response, "response"),
                    errors=errors,
                    policy=self.policy(spec, m, m.request),
                    doc=m.doc,
                    deprecated=spec.deprecated,
                )
            )
        return ServiceModel(
            decl.name, fqn, naming.constant_name(decl.name), f"{py}Client", f"{py}Base",
            tuple(methods), decl.doc,
        )  # fmt: skip

    def resolve_fqn(self, ref: ast.NamedType) -> str:
        symbol = self.program.resolve(self.schema, ref)
        if symbol is None:
            raise self.fail(ref.span, "unknown-type", f"unknown type {ref.name}")
        return symbol.fqn

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
