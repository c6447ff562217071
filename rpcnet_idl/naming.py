"""Python names for schema names: snake_case methods, escaped keywords and clashes.

The rules, and why (also in ``docs/perf/codegen.md``):

- A name that is a Python keyword or soft keyword gets a trailing underscore (``class_``).
- Type names (module level) that are builtins also get one (``list_``): generated code uses
  ``int``, ``str``, ``list`` and friends at module level, and a shadowed builtin would break it.
- Field names are escaped when they would shadow a name the class body uses in annotations
  (builtin types, the module's own type names, generated members such as ``to_wire``), but not
  merely for being builtins: ``Task(id="t1")`` stays as SPEC §3 writes it, since an attribute
  named ``id`` or ``type`` hides nothing.
- Every helper the generated module defines or imports starts with an underscore, so schema
  names never need escaping against them (and schema names cannot start with ``__``).
"""

from __future__ import annotations

import builtins
import keyword
import re

__all__ = [
    "ERROR_RESERVED",
    "MESSAGE_RESERVED",
    "UNION_RESERVED",
    "constant_name",
    "escape",
    "field_name",
    "method_name",
    "module_name",
    "type_name",
]

_KEYWORDS = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist)
_BUILTINS = frozenset(name for name in dir(builtins) if not name.startswith("_"))

#: Builtins the class bodies of generated code refer to (in annotations and defaults).
_ANNOTATION_BUILTINS = frozenset(
    {"bool", "bytes", "dict", "float", "int", "list", "object", "str", "type", "None"}
)

#: Members a generated message or union defines, besides its fields.
MESSAGE_RESERVED = frozenset({"to_wire", "from_wire"}) | _ANNOTATION_BUILTINS
UNION_RESERVED = MESSAGE_RESERVED | {"which"}
#: Attributes of `rpcnet_runtime.SchemaError` (and of exceptions) a field must not replace.
ERROR_RESERVED = MESSAGE_RESERVED | {
    "status",
    "message",
    "metadata",
    "args",
    "retry_after_seconds",
    "not_processed",
    "error_name",
    "default_status",
    "pushback_seconds",
    "with_traceback",
    "add_note",
}
#: Members of an `enum.IntEnum` a value must not replace.
ENUM_RESERVED = frozenset({"name", "value", "mro"})

_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")
_WORD = re.compile(r"([a-z0-9])([A-Z])")
_NOT_IDENT = re.compile(r"\W")


def escape(name: str, reserved: frozenset[str] | set[str] = frozenset()) -> str:
    """`name` with a trailing underscore when it is a keyword or in `reserved`."""
    if name in _KEYWORDS or name in reserved:
        return name + "_"
    return name


def snake_case(name: str) -> str:
    """``GetHTTPStatus`` -> ``get_http_status``; ``process_stream`` stays as it is."""
    return _WORD.sub(r"\1_\2", _ACRONYM.sub(r"\1_\2", name)).lower()


def type_name(name: str) -> str:
    """The Python class name of a message, enum, union, error or service."""
    return escape(name, _BUILTINS)


def field_name(name: str, reserved: frozenset[str] | set[str]) -> str:
    """The attribute of a field; `reserved` is the kind's set plus the module's type names."""
    return escape(name, reserved)


def enum_value_name(name: str) -> str:
    """The member name of an enum value."""
    return escape(name, ENUM_RESERVED)


def method_name(name: str) -> str:
    """The Python method of an rpc on the client and the skeleton."""
    return escape(snake_case(name))


def constant_name(*parts: str) -> str:
    """``("ComputeService", "Process")`` -> ``COMPUTE_SERVICE_PROCESS``."""
    return "_".join(snake_case(part).upper() for part in parts)


def module_name(stem: str) -> str:
    """The generated module of a schema file stem (``my-api`` -> ``my_api``)."""
    name = _NOT_IDENT.sub("_", stem)
    if not name or name[0].isdigit():
        name = "_" + name
    return escape(name, {"__init__"})
