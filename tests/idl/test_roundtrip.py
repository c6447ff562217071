"""Generated codecs: Hypothesis round trips through msgpack for every field type, an old reader
reading a new writer's messages, and wrong wire types rejected with the field named."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inmemory import imported

from rpcnet_idl.codegen import generate
from rpcnet_idl.loader import load_text
from rpcnet_runtime import WireDecodeError
from rpcnet_runtime.codec import pack, unpack

_COMMON = """
enum Color {
  COLOR_UNSPECIFIED = 0;
  RED = 1;
  GREEN = 2;
}

message Inner {
  string name = 1;
  optional int32 weight = 2;
}

union Pick {
  Inner inner = 1;
  string label = 2;
  int64 code = 3;
}
"""

_ALL_FIELDS = """
message All {
  bool flag = 1;
  int32 i32 = 2;
  int64 i64 = 3;
  uint32 u32 = 4;
  uint64 u64 = 5;
  float32 f32 = 6;
  float64 f64 = 7;
  string text = 8;
  bytes blob = 9;
  timestamp at = 10;
  duration span = 11;
  Color color = 12;
  Inner inner = 13;
  Pick pick = 14;
  optional string maybe_text = 15;
  optional uint64 maybe_count = 16;
  optional Color maybe_color = 17;
  list<int32> numbers = 18;
  list<Inner> inners = 19;
  list<duration> spans = 20;
  map<string, int64> counts = 21;
  map<int32, Inner> by_id = 22;
  map<Color, timestamp> seen = 23;
  map<bool, bytes> flags = 24;
  list<list<string>> grid = 25;
  map<uint64, list<Pick>> picks = 26;
}
"""

_NEW_FIELDS = """
  string added_text = 40;
  list<Inner> added_list = 41;
  map<string, Pick> added_map = 42;
  Inner added_inner = 43;
  timestamp added_at = 44;
  reserved 45;
"""

SCHEMA_V1 = "package rt.v1;\n" + _COMMON + _ALL_FIELDS
SCHEMA_V2 = (
    "package rt.v1;\n"
    + _COMMON.replace("GREEN = 2;", "GREEN = 2;\n  BLUE = 3;")
    + _ALL_FIELDS.rstrip().removesuffix("}")
    + _NEW_FIELDS
    + "}\n"
)


def _generate(text: str) -> dict[str, str]:
    result = load_text(text, "roundtrip.rpc")
    assert result.ok, result.diagnostics
    return generate(result.program)


@pytest.fixture(scope="module")
def v1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    with imported(_generate(SCHEMA_V1), tmp_path_factory.mktemp("v1"), "rt_gen_v1") as modules:
        yield modules["roundtrip"]


@pytest.fixture(scope="module")
def v2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    with imported(_generate(SCHEMA_V2), tmp_path_factory.mktemp("v2"), "rt_gen_v2") as modules:
        yield modules["roundtrip"]


def _over_wire(value: Any, cls: Any) -> Any:
    return cls.from_wire(unpack(pack(value.to_wire())))


# --- strategies ------------------------------------------------------------------------------

_SMALL = {"max_size": 4}
_NS_LIMIT = 2**63 // 1000 - 1  # a duration travels as int64 nanoseconds
_durations = st.integers(-_NS_LIMIT, _NS_LIMIT).map(lambda us: timedelta(microseconds=us))
_timestamps = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
)
_floats = st.floats(allow_nan=False)
_i32 = st.integers(-(2**31), 2**31 - 1)
_i64 = st.integers(-(2**63), 2**63 - 1)
_u32 = st.integers(0, 2**32 - 1)
_u64 = st.integers(0, 2**64 - 1)


def _strategies(m: ModuleType) -> st.SearchStrategy[Any]:
    colors = st.sampled_from(list(m.Color))
    inner = st.builds(m.Inner, name=st.text(**_SMALL), weight=st.none() | _i32)
    pick = st.one_of(
        st.builds(m.Pick, inner=inner),
        st.builds(m.Pick, label=st.text(**_SMALL)),
        st.builds(m.Pick, code=_i64),
    )
    return st.builds(
        m.All,
        flag=st.booleans(),
        i32=_i32,
        i64=_i64,
        u32=_u32,
        u64=_u64,
        f32=_floats,
        f64=_floats,
        text=st.text(),
        blob=st.binary(**_SMALL),
        at=st.none() | _timestamps,
        span=_durations,
        color=colors,
        inner=st.none() | inner,
        pick=st.none() | pick,
        maybe_text=st.none() | st.text(**_SMALL),
        maybe_count=st.none() | _u64,
        maybe_color=st.none() | colors,
        numbers=st.lists(_i32, **_SMALL),
        inners=st.lists(inner, **_SMALL),
        spans=st.lists(_durations, **_SMALL),
        counts=st.dictionaries(st.text(**_SMALL), _i64, **_SMALL),
        by_id=st.dictionaries(_i32, inner, **_SMALL),
        seen=st.dictionaries(colors, _timestamps, **_SMALL),
        flags=st.dictionaries(st.booleans(), st.binary(**_SMALL), **_SMALL),
        grid=st.lists(st.lists(st.text(**_SMALL), **_SMALL), **_SMALL),
        picks=st.dictionaries(_u64, st.lists(pick, **_SMALL), **_SMALL),
    )


_SETTINGS = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# --- round trips -----------------------------------------------------------------------------


def test_every_field_type_round_trips(v1: ModuleType) -> None:
    @_SETTINGS
    @given(_strategies(v1))
    def check(message: Any) -> None:
        assert _over_wire(message, v1.All) == message

    check()


def test_absent_fields_take_their_defaults(v1: ModuleType) -> None:
    assert v1.All.from_wire({}) == v1.All()
    assert v1.All.from_wire({8: None, 13: None}) == v1.All()  # nil counts as absent
    message = v1.All()
    assert (message.color, message.at, message.inner, message.numbers) == (
        v1.Color.COLOR_UNSPECIFIED,
        None,
        None,
        [],
    )
    assert _over_wire(message, v1.All) == message


def test_old_reader_skips_a_new_writers_fields(v1: ModuleType, v2: ModuleType) -> None:
    @_SETTINGS
    @given(_strategies(v2), st.text(**_SMALL), st.lists(st.builds(v2.Inner), **_SMALL))
    def check(message: Any, text: str, inners: list[Any]) -> None:
        message.added_text = text
        message.added_list = inners
        message.added_map = {"k": v2.Pick(label=text)}
        message.added_inner = v2.Inner(name=text)
        message.added_at = datetime(2026, 1, 1, tzinfo=UTC)
        old = _over_wire(message, v1.All)
        assert old == v1.All.from_wire(
            {k: v for k, v in unpack(pack(message.to_wire())).items() if k < 40}
        )
        assert old.text == message.text and old.numbers == message.numbers
        assert _over_wire(old, v2.All).added_text == ""  # what the old reader never saw

    check()


def test_an_unknown_enum_number_reads_as_the_first_value(v1: ModuleType, v2: ModuleType) -> None:
    new = v2.All(color=v2.Color.BLUE, numbers=[1], seen={v2.Color.BLUE: datetime.now(UTC)})
    old = _over_wire(new, v1.All)
    assert old.color is v1.Color.COLOR_UNSPECIFIED
    assert list(old.seen) == [v1.Color.COLOR_UNSPECIFIED]


# --- wrong wire types ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "value", "path", "problem"),
    [
        (1, 1, "All.flag", "expected a bool, got int"),
        (2, 2**31, "All.i32", "expected an int32, got 2147483648 (out of range)"),
        (4, -1, "All.u32", "expected a uint32, got -1 (out of range)"),
        (2, True, "All.i32", "expected an int32, got bool"),
        (7, "x", "All.f64", "expected a float, got str"),
        (8, b"x", "All.text", "expected a string, got bytes"),
        (9, "x", "All.blob", "expected bytes, got str"),
        (10, 5, "All.at", "expected a timestamp, got int"),
        (11, 1.5, "All.span", "expected a duration (int nanoseconds), got float"),
        (12, "RED", "All.color", "expected an enum number, got str"),
        (13, [], "All.inner", "expected a map, got list"),
        (13, {1: 5}, "Inner.name", "expected a string, got int"),
        (14, {1: {}, 2: "x"}, "Pick", "expected a map with exactly one entry, got dict"),
        (14, {}, "Pick", "expected a map with exactly one entry, got dict"),
        (18, {1: 2}, "All.numbers", "expected an array, got dict"),
        (18, [1, "2"], "All.numbers[item]", "expected an int32, got str"),
        (21, 3, "All.counts", "expected a map, got int"),
        (21, {1: 2}, "All.counts[key]", "expected a string, got int"),
        (21, {"a": "b"}, "All.counts[value]", "expected an int64, got str"),
        (23, {1: "x"}, "All.seen[value]", "expected a timestamp, got str"),
        (25, [["a"], [1]], "All.grid[item][item]", "expected a string, got int"),
    ],
)
def test_a_wrong_wire_type_names_the_field(
    v1: ModuleType, number: int, value: Any, path: str, problem: str
) -> None:
    with pytest.raises(WireDecodeError) as error:
        v1.All.from_wire(unpack(pack({number: value})))
    assert (error.value.path, error.value.problem) == (path, problem)


def test_a_message_must_be_a_map(v1: ModuleType) -> None:
    with pytest.raises(WireDecodeError, match="All: expected a map, got list"):
        v1.All.from_wire([1, 2])


def test_an_unknown_union_variant_is_an_error(v1: ModuleType) -> None:
    with pytest.raises(WireDecodeError, match="unknown variant number 9"):
        v1.Pick.from_wire({9: "x"})


def test_a_union_with_no_variant_set_cannot_be_encoded(v1: ModuleType) -> None:
    pick = v1.Pick(label="x")
    pick.label = None
    with pytest.raises(ValueError, match="no variant is set"):
        pick.to_wire()
