"""The view-models the code generator's templates read (built by `model`)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "EnumModel",
    "EnumValueModel",
    "FieldModel",
    "MethodModel",
    "ModuleModel",
    "ServiceModel",
    "TypeModel",
]


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
