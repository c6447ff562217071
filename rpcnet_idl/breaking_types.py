"""Breaking changes inside one type: fields, union variants, enum values, reserved, @status.

Fields and variants are matched by number (their wire identity), enum values by number too; a
name found under another number is reported as a number change rather than a deletion.
"""

from __future__ import annotations

from . import ast
from .breaking_context import Diff, Place, Shape, type_text
from .policies import annotation

__all__ = ["WIDENINGS", "compare_type"]

WIDENINGS = frozenset(
    {
        ("int32", "int64"),
        ("uint32", "uint64"),
        ("uint32", "int64"),
        ("float32", "float64"),
    }
)
"""Scalar changes that keep every old value and the Python type (msgpack sizes integers)."""

Decl = ast.Message | ast.Error | ast.Union | ast.Enum


def compare_type(diff: Diff, old: tuple[ast.Schema, Decl], new: tuple[ast.Schema, Decl]) -> None:
    """Every breaking change between two versions of the same (same-kind) type."""
    old_schema, old_decl = old
    new_schema, new_decl = new
    if isinstance(old_decl, ast.Enum) and isinstance(new_decl, ast.Enum):
        _compare_enum(diff, old_schema, old_decl, new_schema, new_decl)
    elif not isinstance(old_decl, ast.Enum) and not isinstance(new_decl, ast.Enum):
        _compare_members(diff, old_schema, old_decl, new_schema, new_decl)
        if isinstance(old_decl, ast.Error) and isinstance(new_decl, ast.Error):
            _compare_status(diff, old_schema, old_decl, new_schema, new_decl)
    _compare_reserved(diff, old_schema, old_decl, new_schema, new_decl)


def _members(decl: ast.Message | ast.Error | ast.Union) -> tuple[ast.Field, ...]:
    return decl.variants if isinstance(decl, ast.Union) else decl.fields


def _reserved_number(decl: Decl, number: int) -> bool:
    return any(lo <= number <= hi for r in decl.reserved for lo, hi in r.ranges)


def _compare_members(
    diff: Diff,
    old_schema: ast.Schema,
    old_decl: ast.Message | ast.Error | ast.Union,
    new_schema: ast.Schema,
    new_decl: ast.Message | ast.Error | ast.Union,
) -> None:
    union = isinstance(new_decl, ast.Union)
    what = "variant" if union else "field"
    new_by_number = {f.number: f for f in _members(new_decl)}
    new_by_name = {f.name: f for f in _members(new_decl)}
    owner = new_decl.name
    for field in _members(old_decl):
        old_place = Place(old_schema, field.span)
        same_number = new_by_number.get(field.number)
        same_name = new_by_name.get(field.name)
        if same_name is not None and same_name.number != field.number:
            diff.report(
                "FIELD_SAME_NUMBER",
                f"{what} {owner}.{field.name} changed number from {field.number} to "
                f"{same_name.number}",
                Place(new_schema, same_name.number_span),
                Place(old_schema, field.number_span),
                "numbers are the wire identity: keep the old number, or add a new field and "
                "reserve the old number",
            )
        if same_number is None:
            if same_name is not None:
                continue
            new_place = Place(new_schema, new_decl.name_span)
            if union:
                diff.report(
                    "UNION_VARIANT_NO_DELETE",
                    f"variant {field.number} ({field.name}) of union {owner} was deleted",
                    new_place,
                    old_place,
                    "a peer built from the old schema may still send it; deprecate it instead",
                )
            elif _reserved_number(new_decl, field.number):
                diff.report(
                    "FIELD_NO_DELETE_RESERVED",
                    f"field {field.number} ({field.name}) of {owner} was deleted; its number is "
                    "reserved, but the generated attribute is gone",
                    new_place,
                    old_place,
                )
            else:
                diff.report(
                    "FIELD_NO_DELETE",
                    f"field {field.number} ({field.name}) of {owner} was deleted without "
                    "reserving its number",
                    new_place,
                    old_place,
                    f"reserve the number: `reserved {field.number};`",
                )
            continue
        _compare_field(diff, old_schema, field, new_schema, same_number, (what, owner))


def _compatible(old: Shape, new: Shape) -> bool:
    if old == new:
        return True
    if old[0] != new[0]:
        return False
    if old[0] == "scalar":
        return (old[1], new[1]) in WIDENINGS
    if old[0] == "list":
        return _compatible(old[1], new[1])  # type: ignore[arg-type]
    if old[0] == "map":
        return _compatible(old[1], new[1]) and _compatible(old[2], new[2])  # type: ignore[arg-type]
    return False


def _compare_field(
    diff: Diff,
    old_schema: ast.Schema,
    old: ast.Field,
    new_schema: ast.Schema,
    new: ast.Field,
    owner: tuple[str, str],
) -> None:
    what, decl = owner
    where = f"{what} {decl}.{new.name} ({new.number})"
    old_place, new_place = Place(old_schema, old.span), Place(new_schema, new.span)
    if old.name != new.name:
        diff.report(
            "FIELD_SAME_NAME",
            f"{what} {old.number} of {decl} was renamed from {old.name} to {new.name}; the wire "
            "is unchanged but the Python attribute is not",
            Place(new_schema, new.name_span),
            Place(old_schema, old.name_span),
        )
    old_shape = diff.old_shape(old_schema, old.type)
    new_shape = diff.new_shape(new_schema, new.type)
    kinds = {"scalar": "singular", "named": "singular", "list": "a list", "map": "a map"}
    old_kind, new_kind = kinds[str(old_shape[0])], kinds[str(new_shape[0])]
    if old_kind != new_kind:
        diff.report(
            "FIELD_SAME_CARDINALITY",
            f"{where} changed from {old_kind} "
            f"({type_text(old.type)}) to {new_kind} ({type_text(new.type)})",
            Place(new_schema, new.type.span),
            Place(old_schema, old.type.span),
        )
    elif not _compatible(old_shape, new_shape):
        diff.report(
            "FIELD_SAME_TYPE",
            f"{where} changed type from {type_text(old.type)} to {type_text(new.type)}",
            Place(new_schema, new.type.span),
            Place(old_schema, old.type.span),
            "add a field with a new number instead",
        )
    nullable_anyway = new_shape == ("scalar", "timestamp") or diff.new_kind(new_shape) in (
        ast.Message,
        ast.Union,
        ast.Error,
    )
    if old.optional != new.optional and not nullable_anyway:
        change = "became optional" if new.optional else "is no longer optional"
        diff.report(
            "FIELD_SAME_OPTIONAL",
            f"{where} {change}, so its Python type changes",
            new_place,
            old_place,
        )


def _compare_enum(
    diff: Diff, old_schema: ast.Schema, old: ast.Enum, new_schema: ast.Schema, new: ast.Enum
) -> None:
    by_number = {v.number: v for v in new.values}
    by_name = {v.name: v for v in new.values}
    for value in old.values:
        old_place = Place(old_schema, value.span)
        same_number = by_number.get(value.number)
        same_name = by_name.get(value.name)
        if same_name is not None and same_name.number != value.number:
            diff.report(
                "ENUM_VALUE_SAME_NUMBER",
                f"enum value {new.name}.{value.name} changed number from {value.number} to "
                f"{same_name.number}",
                Place(new_schema, same_name.number_span),
                Place(old_schema, value.number_span),
            )
        if same_number is None:
            if same_name is not None:
                continue
            if _reserved_number(new, value.number):
                diff.report(
                    "ENUM_VALUE_NO_DELETE_RESERVED",
                    f"enum value {value.number} ({value.name}) of {new.name} was deleted; its "
                    "number is reserved, but the Python member is gone",
                    Place(new_schema, new.name_span),
                    old_place,
                )
            else:
                diff.report(
                    "ENUM_VALUE_NO_DELETE",
                    f"enum value {value.number} ({value.name}) of {new.name} was deleted "
                    "without reserving its number",
                    Place(new_schema, new.name_span),
                    old_place,
                    f"add `reserved {value.number};`",
                )
        elif same_number.name != value.name:
            diff.report(
                "ENUM_VALUE_SAME_NAME",
                f"enum value {value.number} of {new.name} was renamed from {value.name} to "
                f"{same_number.name}",
                Place(new_schema, same_number.span),
                old_place,
            )


def _uncovered(low: int, high: int, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of [low, high] that no range in `ranges` covers."""
    gaps: list[tuple[int, int]] = []
    at = low
    for lo, hi in sorted(ranges):
        if hi < at:
            continue
        if lo > high:
            break
        if lo > at:
            gaps.append((at, lo - 1))
        at = max(at, hi + 1)
        if at > high:
            return gaps
    if at <= high:
        gaps.append((at, high))
    return gaps


def _range_text(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo} to {hi}"


def _compare_reserved(
    diff: Diff, old_schema: ast.Schema, old: Decl, new_schema: ast.Schema, new: Decl
) -> None:
    new_ranges = [pair for r in new.reserved for pair in r.ranges]
    new_names = {name for r in new.reserved for name in r.names}
    for reserved in old.reserved:
        old_place = Place(old_schema, reserved.span)
        new_place = Place(new_schema, new.name_span)
        for lo, hi in reserved.ranges:
            for gap in _uncovered(lo, hi, new_ranges):
                diff.report(
                    "RESERVED_NO_DELETE",
                    f"{new.name} no longer reserves {_range_text(*gap)}",
                    new_place,
                    old_place,
                    "a reserved number must stay reserved so it is never reused",
                )
        for name in reserved.names:
            if name not in new_names:
                diff.report(
                    "RESERVED_NAME_NO_DELETE",
                    f"{new.name} no longer reserves the name {name!r}",
                    new_place,
                    old_place,
                )


def _status(decl: ast.Error) -> tuple[str, ast.Span]:
    found = annotation(decl.annotations, "status")
    if found is not None and found.positional and isinstance(found.positional[0], ast.NameValue):
        return found.positional[0].name, found.span
    return "UNKNOWN", decl.name_span


def _compare_status(
    diff: Diff, old_schema: ast.Schema, old: ast.Error, new_schema: ast.Schema, new: ast.Error
) -> None:
    (old_status, old_span), (new_status, new_span) = _status(old), _status(new)
    if old_status != new_status:
        diff.report(
            "ERROR_SAME_STATUS",
            f"error {new.name} now travels with status {new_status} instead of {old_status}",
            Place(new_schema, new_span),
            Place(old_schema, old_span),
            "callers retrying or branching on the status see a different one",
        )
