"""The parser: the SPEC §1 example and every construct of the language."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcnet_idl import ast
from rpcnet_idl.parser import parse, parse_duration

SCHEMAS = Path(__file__).parent / "schemas"


@pytest.fixture(scope="module")
def compute() -> ast.Schema:
    return parse((SCHEMAS / "compute.rpc").read_text(), "compute.rpc")


def _decl(schema: ast.Schema, name: str) -> ast.Declaration:
    return next(d for d in schema.declarations if d.name == name)


def test_spec_example_header(compute: ast.Schema) -> None:
    assert compute.path == "compute.rpc"
    assert compute.package == "acme.compute.v1"
    assert compute.package_span == ast.Span(3, 9, 3, 24)
    assert compute.doc == (
        "A doc comment attaches to the declaration below it and becomes its Python docstring."
    )
    assert [(i.path, i.span.line) for i in compute.imports] == [("common.rpc", 5)]


def test_spec_example_enum(compute: ast.Schema) -> None:
    priority = _decl(compute, "Priority")
    assert isinstance(priority, ast.Enum)
    assert [(v.name, v.number) for v in priority.values] == [
        ("PRIORITY_UNSPECIFIED", 0),
        ("LOW", 1),
        ("HIGH", 2),
    ]
    assert [(r.ranges, r.names) for r in priority.reserved] == [
        (((3, 3), (5, 7)), ()),
        ((), ("URGENT",)),
    ]
    assert priority.name_span == ast.Span(7, 6, 7, 14)


def test_spec_example_message_fields(compute: ast.Schema) -> None:
    task = _decl(compute, "Task")
    assert isinstance(task, ast.Message)
    types = {f.name: f.type for f in task.fields}
    assert isinstance(types["id"], ast.ScalarType) and types["id"].name == "string"
    assert isinstance(types["priority"], ast.NamedType) and types["priority"].name == "Priority"
    shard_ids = types["shard_ids"]
    assert isinstance(shard_ids, ast.ListType)
    assert shard_ids.element == ast.ScalarType("int64", ast.Span(19, 8, 19, 13))
    tags = types["tags"]
    assert isinstance(tags, ast.MapType)
    assert (tags.key, tags.value) == (
        ast.ScalarType("string", ast.Span(20, 7, 20, 13)),
        ast.ScalarType("string", ast.Span(20, 15, 20, 21)),
    )
    assert types["cost"] == ast.NamedType("acme.common.v1.Money", ast.Span(23, 3, 23, 23))
    assert [f.name for f in task.fields if f.optional] == ["priority"]
    assert [f.number for f in task.fields] == [1, 2, 3, 4, 5, 6, 7, 8]
    priority = task.fields[2]
    assert priority.span == ast.Span(18, 3, 18, 34)
    assert priority.name_span == ast.Span(18, 21, 18, 29)
    assert priority.number_span == ast.Span(18, 32, 18, 33)
    assert [(r.ranges, r.names) for r in task.reserved] == [
        (((9, 9), (10, 12)), ()),
        ((), ("old_name",)),
    ]


def test_spec_example_union_and_error(compute: ast.Schema) -> None:
    outcome = _decl(compute, "Outcome")
    assert isinstance(outcome, ast.Union)
    assert [(v.name, v.number) for v in outcome.variants] == [("done", 1), ("failed", 2)]
    overloaded = _decl(compute, "Overloaded")
    assert isinstance(overloaded, ast.Error)
    assert [f.name for f in overloaded.fields] == ["reason", "retry_after"]
    (status,) = overloaded.annotations
    assert status.name == "status"
    assert status.positional == (ast.NameValue("RESOURCE_EXHAUSTED", status.positional[0].span),)


def test_spec_example_service(compute: ast.Schema) -> None:
    service = _decl(compute, "ComputeService")
    assert isinstance(service, ast.Service)
    (timeout,) = service.annotations
    assert timeout.name == "timeout"
    assert isinstance(timeout.positional[0], ast.DurationValue)
    assert timeout.positional[0].seconds == 10.0
    kinds = {m.name: (m.request_stream, m.response_stream) for m in service.methods}
    assert kinds == {
        "Process": (False, False),
        "Lookup": (False, False),
        "Watch": (False, True),
        "Upload": (True, False),
        "Chat": (True, True),
        "Run": (False, False),
    }
    process = service.methods[0]
    assert process.doc == "Run one task."
    assert [a.name for a in process.annotations] == ["idempotent", "timeout", "retry"]
    assert process.throws == (ast.NamedType("Overloaded", ast.Span(81, 47, 81, 57)),)
    retry = process.annotations[2]
    attempts = retry.argument("attempts")
    assert isinstance(attempts, ast.IntValue) and attempts.value == 4
    backoff = retry.argument("backoff")
    assert isinstance(backoff, ast.RangeValue)
    assert isinstance(backoff.low, ast.DurationValue) and backoff.low.seconds == 0.05
    assert isinstance(backoff.high, ast.DurationValue) and backoff.high.text == "1s"
    on = retry.argument("on")
    assert isinstance(on, ast.ListValue)
    assert [v.name for v in on.items if isinstance(v, ast.NameValue)] == [
        "UNAVAILABLE",
        "DEADLINE_EXCEEDED",
        "Overloaded",
    ]
    run = service.methods[-1]
    assert run.annotations[0].positional == (
        ast.StringValue("use Process", run.annotations[0].positional[0].span),
    )
    assert process.name_span == ast.Span(81, 7, 81, 14)
    assert process.span.line == 78  # the element starts at its first annotation


def test_doc_comments_attach_to_the_next_element_and_join_lines() -> None:
    text = """/// The file.
package p.v1;

/// A message.
/// Two lines.
@deprecated
message M {
  /// The id.
  // an ordinary comment between doc and field does not detach it
  string id = 1;
  string no_doc = 2;
}

/// Dropped: a blank line separates this block from the next one.

/// Kept.
enum E {
  /// Zero.
  ZERO = 0;
}

service S {
  /// Runs.
  rpc Run(M) returns (M);
}
"""
    schema = parse(text, "doc.rpc")
    message, enum, service = schema.declarations
    assert schema.doc == "The file."
    assert isinstance(message, ast.Message)
    assert message.doc == "A message.\nTwo lines."
    assert [f.doc for f in message.fields] == ["The id.", None]
    assert isinstance(enum, ast.Enum)
    assert enum.doc == "Kept."
    assert enum.values[0].doc == "Zero."
    assert isinstance(service, ast.Service)
    assert service.doc is None
    assert service.methods[0].doc == "Runs."


def test_comments_and_doc_markers_inside_strings_are_not_docs() -> None:
    text = 'package p.v1;\n/* /// not a doc */\nmessage M {\n  reserved "///x";\n}\n'
    schema = parse(text, "c.rpc")
    (message,) = schema.declarations
    assert message.doc is None
    assert isinstance(message, ast.Message)
    assert message.reserved[0].names == ("///x",)


def test_annotation_values_of_every_kind() -> None:
    text = (
        "package p.v1;\n"
        '@x(1, -2, 1.5, "s\\"q", true, false, 250ms, 2us, 5m, 1h, a.b.C, 1..3, [A, B,], [], '
        "k = 1.5s..2s)\nmessage M {}\n"
    )
    (message,) = parse(text, "a.rpc").declarations
    (annotation,) = message.annotations
    kinds = [type(v).__name__ for v in annotation.positional]
    assert kinds == [
        "IntValue",
        "IntValue",
        "FloatValue",
        "StringValue",
        "BoolValue",
        "BoolValue",
        "DurationValue",
        "DurationValue",
        "DurationValue",
        "DurationValue",
        "NameValue",
        "RangeValue",
        "ListValue",
        "ListValue",
    ]
    values = annotation.positional
    assert isinstance(values[1], ast.IntValue) and values[1].value == -2
    assert isinstance(values[3], ast.StringValue) and values[3].value == 's"q'
    assert isinstance(values[4], ast.BoolValue) and values[4].value is True
    seconds = [v.seconds for v in values[6:10] if isinstance(v, ast.DurationValue)]
    assert seconds == pytest.approx([0.25, 2e-6, 300.0, 3600.0])
    assert isinstance(values[10], ast.NameValue) and values[10].name == "a.b.C"
    assert isinstance(values[12], ast.ListValue) and len(values[12].items) == 2
    assert isinstance(values[13], ast.ListValue) and values[13].items == ()
    k = annotation.argument("k")
    assert isinstance(k, ast.RangeValue)
    assert isinstance(k.low, ast.DurationValue) and k.low.seconds == 1.5
    assert annotation.argument("missing") is None
    bare = parse("package p.v1;\n@deprecated\nmessage M {}\n", "b.rpc").declarations[0]
    assert bare.annotations[0] == ast.Annotation("deprecated", (), (), ast.Span(2, 1, 2, 12))


def test_keywords_may_be_used_as_names_where_no_keyword_fits() -> None:
    text = (
        "package p.v1;\nmessage message {\n  string error = 1;\n  list<int32> list = 2;\n"
        "  map<string, int32> map = 3;\n  optional string optional = 4;\n  string stream = 5;\n}\n"
    )
    (message,) = parse(text, "k.rpc").declarations
    assert isinstance(message, ast.Message)
    assert message.name == "message"
    assert [f.name for f in message.fields] == ["error", "list", "map", "optional", "stream"]
    assert message.fields[3].optional


def test_nested_containers_reserved_max_and_throws_lists() -> None:
    text = (
        "package p.v1;\nmessage M {\n  map<string, list<list<int32>>> grid = 1;\n"
        "  reserved 2 to max, 7;\n}\nservice S {\n  rpc X(M) returns (M) throws (p.v1.E, F);\n}\n"
    )
    message, service = parse(text, "n.rpc").declarations
    assert isinstance(message, ast.Message) and isinstance(service, ast.Service)
    grid = message.fields[0].type
    assert isinstance(grid, ast.MapType)
    assert isinstance(grid.value, ast.ListType) and isinstance(grid.value.element, ast.ListType)
    assert message.reserved[0].ranges == ((2, (1 << 29) - 1), (7, 7))
    (enum,) = parse(
        "package p.v1;\nenum E {\n  A = 0;\n  reserved 5 to max;\n}\n", "e.rpc"
    ).declarations
    assert isinstance(enum, ast.Enum)
    assert enum.reserved[0].ranges == ((5, (1 << 31) - 1),)
    assert [t.name for t in service.methods[0].throws] == ["p.v1.E", "F"]


def test_an_empty_schema_has_only_a_package() -> None:
    schema = parse("package only.v1;", "e.rpc")
    assert (schema.package, schema.imports, schema.declarations, schema.doc) == (
        "only.v1",
        (),
        (),
        None,
    )


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@settings(derandomize=True, deadline=None)
@given(
    whole=st.integers(min_value=0, max_value=10**6),
    fraction=st.one_of(st.none(), st.integers(min_value=0, max_value=999)),
    unit=st.sampled_from(sorted(_UNITS)),
)
def test_duration_literals_round_trip_through_the_parser(
    whole: int, fraction: int | None, unit: str
) -> None:
    number = f"{whole}" if fraction is None else f"{whole}.{fraction:03d}"
    text = f"{number}{unit}"
    expected = float(number) * _UNITS[unit]
    assert parse_duration(text) == pytest.approx(expected)
    schema = parse(f"package p.v1;\n@timeout({text})\nservice S {{}}\n", "d.rpc")
    value = schema.declarations[0].annotations[0].positional[0]
    assert isinstance(value, ast.DurationValue)
    assert value.text == text
    assert value.seconds == pytest.approx(expected)


def test_parse_duration_rejects_non_durations() -> None:
    for text in ("5", "5 s", "s", "1.s", "5min"):
        with pytest.raises(ValueError):
            parse_duration(text)


def test_a_doc_comment_may_also_stand_between_annotations_and_the_element() -> None:
    text = (
        "package p.v1;\n@deprecated\n/// After the annotation.\nmessage M {\n"
        "  @deprecated\n  /// Field doc.\n  string id = 1;\n}\n"
        "service S {\n  @idempotent\n  /// Method doc.\n  rpc A(M) returns (M);\n}\n"
    )
    message, service = parse(text, "d.rpc").declarations
    assert isinstance(message, ast.Message) and isinstance(service, ast.Service)
    assert message.doc == "After the annotation."
    assert message.fields[0].doc == "Field doc."
    assert service.doc is None
    assert service.methods[0].doc == "Method doc."
