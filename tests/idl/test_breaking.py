"""`rpcnet-gen breaking`: one old and one new schema per rule, breaking and compatible.

Each case runs the real command line against an old directory at the three levels and asserts
the exact set of rule ids and the exit code at each level.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcnet_idl.breaking import compare
from rpcnet_idl.breaking_rules import BREAKING_RULES
from rpcnet_idl.checks_cli import main
from rpcnet_idl.loader import load_text

HEAD = "package p.v1;\n"
MSG = "message M { string a = 1; int32 b = 2; }\n"


@dataclass(frozen=True)
class Case:
    name: str
    old: str
    new: str
    rules: frozenset[str]
    exit: tuple[int, int, int]
    """Exit codes at --level wire, source, policy."""
    old_files: dict[str, str] = field(default_factory=dict)
    new_files: dict[str, str] = field(default_factory=dict)


def case(
    name: str,
    old: str,
    new: str,
    rules: set[str] | None = None,
    exit: tuple[int, int, int] = (1, 1, 1),
    new_head: str = HEAD,
    **files: dict[str, str],
) -> Case:
    return Case(name, HEAD + old, new_head + new, frozenset(rules or ()), exit, **files)


def service(methods: str, prefix: str = "", decls: str = "") -> str:
    body = "message Req { string id = 1; }\nmessage Resp { string v = 1; }\n"
    body += "error Busy { string why = 1; }\nerror Gone { string why = 1; }\n" + decls
    return body + f"{prefix}service S {{\n{methods}\n}}\n"


UNARY = "rpc Get(Req) returns (Resp);"
COMPATIBLE = (0, 0, 0)
SOURCE_ONLY = (0, 1, 1)
POLICY_ONLY = (0, 0, 1)

CASES = [
    # fields
    case(
        "field deleted",
        MSG,
        "message M { string a = 1; }",
        {"FIELD_NO_DELETE"},
    ),
    case(
        "field deleted, number reserved",
        MSG,
        "message M { string a = 1; reserved 2; }",
        {"FIELD_NO_DELETE_RESERVED"},
        SOURCE_ONLY,
    ),
    case(
        "field renumbered",
        MSG,
        "message M { string a = 1; int32 b = 3; }",
        {"FIELD_SAME_NUMBER"},
    ),
    case(
        "field renamed",
        MSG,
        "message M { string a = 1; int32 count = 2; }",
        {"FIELD_SAME_NAME"},
        SOURCE_ONLY,
    ),
    case(
        "field type changed", MSG, "message M { string a = 1; string b = 2; }", {"FIELD_SAME_TYPE"}
    ),
    case("field widened", MSG, "message M { string a = 1; int64 b = 2; }", exit=COMPATIBLE),
    case(
        "field narrowed",
        "message M { int64 b = 2; }",
        "message M { int32 b = 2; }",
        {"FIELD_SAME_TYPE"},
    ),
    case(
        "list element type changed",
        "message M { list<int32> b = 2; }",
        "message M { list<string> b = 2; }",
        {"FIELD_SAME_TYPE"},
    ),
    case(
        "field became a list",
        MSG,
        "message M { string a = 1; list<int32> b = 2; }",
        {"FIELD_SAME_CARDINALITY"},
    ),
    case(
        "list became a map",
        "message M { list<string> b = 2; }",
        "message M { map<string, string> b = 2; }",
        {"FIELD_SAME_CARDINALITY"},
    ),
    case(
        "field became optional",
        MSG,
        "message M { string a = 1; optional int32 b = 2; }",
        {"FIELD_SAME_OPTIONAL"},
        SOURCE_ONLY,
    ),
    case(
        "message field became optional",
        "message N { string x = 1; }\nmessage M { N n = 1; }",
        "message N { string x = 1; }\nmessage M { optional N n = 1; }",
        exit=COMPATIBLE,
    ),
    case(
        "timestamp field became optional",
        "message M { timestamp at = 1; }",
        "message M { optional timestamp at = 1; }",
        exit=COMPATIBLE,
    ),
    case(
        "field added", MSG, "message M { string a = 1; int32 b = 2; bool c = 3; }", exit=COMPATIBLE
    ),
    # types
    case("message deleted", MSG + "message N {}", MSG, {"MESSAGE_NO_DELETE"}, SOURCE_ONLY),
    case(
        "enum deleted",
        MSG + "enum E { E_UNSPECIFIED = 0; }",
        MSG,
        {"ENUM_NO_DELETE"},
        SOURCE_ONLY,
    ),
    case("union deleted", MSG + "union U { M m = 1; }", MSG, {"UNION_NO_DELETE"}, SOURCE_ONLY),
    case("error deleted", MSG + "error X { string why = 1; }", MSG, {"ERROR_NO_DELETE"}),
    case(
        "service deleted",
        service(UNARY),
        service("").replace("service S {\n\n}\n", ""),
        {"SERVICE_NO_DELETE"},
    ),
    case(
        "message became an error",
        "message X { string a = 1; }",
        "error X { string a = 1; }",
        {"TYPE_SAME_KIND"},
    ),
    case(
        "message moved to another file",
        'import "b.rpc";\nmessage M { Moved m = 1; }\nmessage Moved { string a = 1; }',
        'import "b.rpc";\nmessage M { Moved m = 1; }',
        {"TYPE_SAME_MODULE"},
        SOURCE_ONLY,
        old_files={"b.rpc": HEAD},
        new_files={"b.rpc": HEAD + "message Moved { string a = 1; }\n"},
    ),
    case(
        "package changed",
        MSG + service(UNARY),
        MSG + service(UNARY),
        {"PACKAGE_SAME"},
        new_head="package p.v2;\n",
    ),
    # unions
    case(
        "union variant deleted",
        MSG + "message N {}\nunion U { M m = 1; N n = 2; }",
        MSG + "message N {}\nunion U { M m = 1; reserved 2; }",
        {"UNION_VARIANT_NO_DELETE"},
    ),
    case(
        "union variant renamed",
        MSG + "union U { M m = 1; }",
        MSG + "union U { M msg = 1; }",
        {"FIELD_SAME_NAME"},
        SOURCE_ONLY,
    ),
    # enums
    case(
        "enum value deleted",
        "enum E { E_UNSPECIFIED = 0; LOW = 1; HIGH = 2; }",
        "enum E { E_UNSPECIFIED = 0; LOW = 1; }",
        {"ENUM_VALUE_NO_DELETE"},
    ),
    case(
        "enum value deleted, number reserved",
        "enum E { E_UNSPECIFIED = 0; LOW = 1; HIGH = 2; }",
        "enum E { E_UNSPECIFIED = 0; LOW = 1; reserved 2; }",
        {"ENUM_VALUE_NO_DELETE_RESERVED"},
        SOURCE_ONLY,
    ),
    case(
        "enum value renumbered",
        "enum E { E_UNSPECIFIED = 0; LOW = 1; }",
        "enum E { E_UNSPECIFIED = 0; LOW = 2; reserved 1; }",
        {"ENUM_VALUE_SAME_NUMBER"},
    ),
    case(
        "enum value renamed",
        "enum E { E_UNSPECIFIED = 0; LOW = 1; }",
        "enum E { E_UNSPECIFIED = 0; SMALL = 1; }",
        {"ENUM_VALUE_SAME_NAME"},
        SOURCE_ONLY,
    ),
    case(
        "enum value added",
        "enum E { E_UNSPECIFIED = 0; }",
        "enum E { E_UNSPECIFIED = 0; LOW = 1; }",
        exit=COMPATIBLE,
    ),
    # reserved
    case(
        "reserved range shrunk",
        "message M { reserved 5 to 7; }",
        "message M { reserved 5, 7; }",
        {"RESERVED_NO_DELETE"},
    ),
    case(
        "reserved range split",
        "message M { reserved 5 to 7; }",
        "message M { reserved 5, 6 to 7, 9; }",
        exit=COMPATIBLE,
    ),
    case(
        "reserved name dropped",
        'message M { reserved "old"; }',
        "message M { string a = 1; }",
        {"RESERVED_NAME_NO_DELETE"},
        SOURCE_ONLY,
    ),
    # errors
    case(
        "error status changed",
        "error X { string why = 1; }",
        "@status(UNAVAILABLE)\nerror X { string why = 1; }",
        {"ERROR_SAME_STATUS"},
    ),
    # methods
    case(
        "method deleted",
        service(UNARY + "\nrpc Put(Req) returns (Resp);"),
        service(UNARY),
        {"RPC_NO_DELETE"},
    ),
    case(
        "method added",
        service(UNARY),
        service(UNARY + "\nrpc Put(Req) returns (Resp);"),
        exit=COMPATIBLE,
    ),
    case(
        "method became streaming",
        service(UNARY),
        service("rpc Get(Req) returns (stream Resp);"),
        {"RPC_SAME_STREAMING"},
    ),
    case(
        "request type changed",
        service(UNARY),
        service("rpc Get(Resp) returns (Resp);"),
        {"RPC_SAME_REQUEST_TYPE"},
    ),
    case(
        "response type changed",
        service(UNARY),
        service("rpc Get(Req) returns (Req);"),
        {"RPC_SAME_RESPONSE_TYPE"},
    ),
    case(
        "made non-idempotent",
        service("@idempotent\n" + UNARY),
        service(UNARY),
        {"RPC_SAME_IDEMPOTENCY"},
    ),
    case("made idempotent", service(UNARY), service("@idempotent\n" + UNARY), exit=COMPATIBLE),
    case(
        "thrown error removed",
        service("rpc Get(Req) returns (Resp) throws (Busy, Gone);"),
        service("rpc Get(Req) returns (Resp) throws (Busy);"),
        {"RPC_THROWS_NO_DELETE"},
    ),
    # policies
    case(
        "timeout shortened",
        service("@timeout(2s)\n" + UNARY),
        service("@timeout(1s)\n" + UNARY),
        {"POLICY_TIMEOUT_SHORTENED"},
        POLICY_ONLY,
    ),
    case(
        "timeout lengthened",
        service("@timeout(1s)\n" + UNARY),
        service("@timeout(2s)\n" + UNARY),
        exit=COMPATIBLE,
    ),
    case(
        "service timeout moved to the method",
        service(UNARY, "@timeout(2s)\n"),
        service("@timeout(2s)\n" + UNARY),
        exit=COMPATIBLE,
    ),
    case(
        "timeout added",
        service(UNARY),
        service("@timeout(1s)\n" + UNARY),
        {"POLICY_TIMEOUT_ADDED"},
        POLICY_ONLY,
    ),
    case(
        "retry removed",
        service("@retry(attempts = 3)\n" + UNARY),
        service(UNARY),
        {"POLICY_RETRY_REMOVED"},
        POLICY_ONLY,
    ),
    case(
        "retry attempts reduced",
        service("@retry(attempts = 4)\n" + UNARY),
        service("@retry(attempts = 2)\n" + UNARY),
        {"POLICY_RETRY_ATTEMPTS_REDUCED"},
        POLICY_ONLY,
    ),
    case(
        "retry on narrowed",
        service("@idempotent\n@retry(attempts = 3, on = [UNAVAILABLE, Busy])\n" + UNARY),
        service("@idempotent\n@retry(attempts = 3, on = [UNAVAILABLE])\n" + UNARY),
        {"POLICY_RETRY_ON_NARROWED"},
        POLICY_ONLY,
    ),
    case(
        "hedge removed",
        service("@idempotent\n@hedge(after = 100ms, attempts = 2)\n" + UNARY),
        service("@idempotent\n" + UNARY),
        {"POLICY_HEDGE_REMOVED"},
        POLICY_ONLY,
    ),
    case(
        "idempotency key changed",
        service("@idempotent(key = id)\nrpc Get(Req) returns (Resp);"),
        service("@idempotent\nrpc Get(Req) returns (Resp);"),
        {"POLICY_IDEMPOTENCY_KEY_CHANGED"},
        POLICY_ONLY,
    ),
]


def _write(folder: Path, main_text: str, files: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.rpc").write_text(main_text)
    for name, text in files.items():
        (folder / name).write_text(text)


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_rule_table(c: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path / "old", c.old, c.old_files)
    _write(tmp_path, c.new, c.new_files)
    monkeypatch.chdir(tmp_path)
    for level, expected_exit in zip(("wire", "source", "policy"), c.exit, strict=True):
        argv = ["breaking", "a.rpc", "--against", "old", "--format", "json", "--level", level]
        code, out, err = run(argv)
        items = json.loads(out)["diagnostics"]
        assert {item["code"] for item in items} == c.rules, err
        assert code == expected_exit, (level, items, err)
        for item in items:
            rule = BREAKING_RULES[item["code"]]
            assert item["category"] == rule.category
            assert item["old"] is not None and item["old"]["path"].startswith("old/")


def test_every_rule_has_a_breaking_case() -> None:
    covered = set().union(*(c.rules for c in CASES))
    assert covered == set(BREAKING_RULES)


def test_findings_name_both_places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path / "old", HEAD + "\n" + MSG, {})
    _write(tmp_path, HEAD + "message M {\n  string a = 1;\n  int64 b = 3;\n}\n", {})
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(["breaking", "a.rpc", "--against", "old", "--format", "json"])
    (item,) = json.loads(out)["diagnostics"]
    assert code == 1
    assert item["code"] == "FIELD_SAME_NUMBER"
    assert (item["path"], item["line"], item["column"]) == ("a.rpc", 4, 13)
    assert item["old"]["path"] == "old/a.rpc"
    assert (item["old"]["line"], item["old"]["column"]) == (3, 37)


def test_text_and_github_formats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path / "old", HEAD + MSG, {})
    _write(tmp_path, HEAD + "message M { string a = 1; }\n", {})
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["breaking", "a.rpc", "--against", "old"])
    assert code == 1
    assert "a.rpc:2:9: error[FIELD_NO_DELETE]" in out
    assert "category: wire; was: old/a.rpc:2:" in out
    assert "1 error(s)" in err
    code, out, _ = run(["breaking", "a.rpc", "--against", "old", "--format", "github"])
    assert out.startswith("::error file=a.rpc,line=2,col=9,")
    assert "title=FIELD_NO_DELETE (wire)::field 2 (b) of M was deleted" in out


def test_single_file_against(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "before.rpc").write_text(HEAD + MSG)
    (tmp_path / "a.rpc").write_text(HEAD + "message M { string a = 1; string b = 2; }\n")
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(["breaking", "a.rpc", "--against", "before.rpc", "--format", "json"])
    assert code == 1
    assert [i["code"] for i in json.loads(out)["diagnostics"]] == ["FIELD_SAME_TYPE"]
    code, _, err = run(["breaking", "a.rpc", "a.rpc", "--against", "before.rpc"])
    assert code == 2 and "single file" in err


def test_new_file_is_not_compared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "a.rpc").write_text(HEAD + MSG)
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["breaking", "a.rpc", "--against", "old"])
    assert (code, out) == (0, "")
    assert "not in old (new): a.rpc" in err


def test_invalid_new_or_old_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path / "old", HEAD + MSG, {})
    (tmp_path / "a.rpc").write_text(HEAD + "message M { string a = 1 }\n")
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(["breaking", "a.rpc", "--against", "old"])
    assert code == 1 and "error[syntax]" in out
    (tmp_path / "a.rpc").write_text(HEAD + MSG)
    (tmp_path / "old" / "a.rpc").write_text(HEAD + "message M {")
    code, out, err = run(["breaking", "a.rpc", "--against", "old"])
    assert code == 2 and "old/a.rpc" in out and "does not load" in err


def test_missing_against(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.rpc").write_text(HEAD + MSG)
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["breaking", "a.rpc", "--against", "nowhere"])
    assert code == 2 and "no such file or directory" in err
    code, _, err = run(["breaking", "a.rpc"])
    assert code == 2 and "--against" in err


# --- properties -----------------------------------------------------------------------------

SCALARS = ["bool", "int32", "int64", "uint32", "uint64", "float64", "string", "bytes"]


@st.composite
def messages(draw: st.DrawFn) -> list[tuple[int, str, str, bool]]:
    """Fields (number, name, type, optional) of a message."""
    numbers = draw(st.lists(st.integers(1, 60), min_size=1, max_size=6, unique=True))
    fields = []
    for index, number in enumerate(numbers):
        scalar = draw(st.sampled_from(SCALARS))
        kind = draw(st.sampled_from(["plain", "optional", "list", "map"]))
        type_text = {"list": f"list<{scalar}>", "map": f"map<string, {scalar}>"}.get(kind, scalar)
        fields.append((number, f"f{index}", type_text, kind == "optional"))
    return fields


def render(fields: list[tuple[int, str, str, bool]], reserved: tuple[int, ...] = ()) -> str:
    body = " ".join(
        f"{'optional ' if optional else ''}{type_text} {name} = {number};"
        for number, name, type_text, optional in fields
    )
    if reserved:
        body += f" reserved {', '.join(map(str, reserved))};"
    return HEAD + f"message M {{ {body} }}\n"


def diff_codes(old: str, new: str) -> list[str]:
    old_result, new_result = load_text(old, "a.rpc"), load_text(new, "a.rpc")
    assert old_result.ok and new_result.ok, (old_result.diagnostics, new_result.diagnostics)
    return [f.code for f in compare(old_result.program, new_result.program)]


@settings(max_examples=40, deadline=None)
@given(messages())
def test_a_schema_does_not_break_itself(fields: list[tuple[int, str, str, bool]]) -> None:
    assert diff_codes(render(fields), render(fields)) == []


@settings(max_examples=40, deadline=None)
@given(messages(), st.data())
def test_deleting_a_field(fields: list[tuple[int, str, str, bool]], data: st.DataObject) -> None:
    gone = data.draw(st.sampled_from(fields))
    kept = [f for f in fields if f != gone]
    assert diff_codes(render(fields), render(kept)) == ["FIELD_NO_DELETE"]
    assert diff_codes(render(fields), render(kept, (gone[0],))) == ["FIELD_NO_DELETE_RESERVED"]


@settings(max_examples=40, deadline=None)
@given(messages(), st.data())
def test_renaming_a_field(fields: list[tuple[int, str, str, bool]], data: st.DataObject) -> None:
    number = data.draw(st.sampled_from(fields))[0]
    renamed = [(n, f"{x}_new" if n == number else x, t, o) for n, x, t, o in fields]
    assert diff_codes(render(fields), render(renamed)) == ["FIELD_SAME_NAME"]


def test_deleted_file_and_file_left_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    imported = HEAD + 'import "b.rpc";\nmessage M { string a = 1; }\n'
    _write(tmp_path / "old", imported, {"b.rpc": HEAD + "message Gone { string x = 1; }\n"})
    _write(tmp_path, HEAD + "message M { string a = 1; }\n", {})
    monkeypatch.chdir(tmp_path)
    # b.rpc was deleted: its types are gone, shown at their old place
    code, out, _ = run(["breaking", "a.rpc", "--against", "old", "--format", "json"])
    (item,) = json.loads(out)["diagnostics"]
    assert (code, item["code"], item["path"]) == (1, "MESSAGE_NO_DELETE", "old/b.rpc")
    # b.rpc still exists but a.rpc no longer imports it: not part of this comparison
    (tmp_path / "b.rpc").write_text(HEAD)
    assert run(["breaking", "a.rpc", "--against", "old"])[:2] == (0, "")
    # named on the command line, it is compared
    code, out, _ = run(["breaking", "a.rpc", "b.rpc", "--against", "old", "--format", "json"])
    (item,) = json.loads(out)["diagnostics"]
    assert (code, item["code"], item["path"]) == (1, "MESSAGE_NO_DELETE", "b.rpc")
