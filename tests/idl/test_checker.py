"""The diagnostics catalogue and the checker's name resolution and hints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcnet_idl.checker import CODES
from rpcnet_idl.diagnostics import Severity
from rpcnet_idl.loader import load, load_text

CATALOGUE = Path(__file__).parent / "diagnostics"
EXPECT = re.compile(r"^// expect: ([a-z-]+) at (\d+):(\d+)(?: in (\S+))?( warning)?$", re.M)
CASES = sorted(CATALOGUE.glob("*.rpc"))


def _expected(path: Path) -> set[tuple[str, str, int, int, str]]:
    found = set()
    for code, line, col, where, warning in EXPECT.findall(path.read_text()):
        target = (CATALOGUE / where) if where else path
        severity = "warning" if warning else "error"
        found.add((code, str(target.resolve()), int(line), int(col), severity))
    return found


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_catalogue_case_reports_exactly_its_expectations(case: Path) -> None:
    expected = _expected(case)
    assert expected, f"{case.name} has no '// expect:' line"
    result = load([case])
    actual = {
        (d.code, str(Path(d.path).resolve()), d.span.line, d.span.column, d.severity.value)
        for d in result.diagnostics
    }
    assert actual == expected
    assert len(result.diagnostics) == len(actual), "a diagnostic was reported twice"
    for d in result.diagnostics:
        assert d.source_line, f"{d.code} has no source line"
        assert d.message


def test_catalogue_covers_every_code_and_names_files_after_them() -> None:
    stems = {case.stem for case in CASES}
    assert CODES - {"missing-file"} <= stems
    for case in CASES:
        codes = {code for code, *_ in _expected(case)}
        assert case.stem in codes, f"{case.name} does not exercise its own rule"


def test_the_spec_example_is_clean() -> None:
    result = load([Path(__file__).parent / "schemas" / "compute.rpc"])
    assert result.diagnostics == []
    assert result.ok


def test_unknown_type_in_an_unimported_file_says_where_it_lives() -> None:
    files = {
        "common.rpc": "package acme.common.v1;\nmessage Money { int64 units = 1; }\n",
        "mid.rpc": 'package acme.mid.v1;\nimport "common.rpc";\nmessage M { int32 a = 1; }\n',
    }
    text = (
        'package acme.orders.v1;\nimport "mid.rpc";\n'
        "message Order {\n  acme.common.v1.Money cost = 1;\n  Money plain = 2;\n}\n"
    )
    result = load_text(text, "orders.rpc", files)
    unknown = [d for d in result.diagnostics if d.code == "unknown-type"]
    assert [(d.span.line, d.span.column) for d in unknown] == [(4, 3), (5, 3)]
    assert unknown[0].hint is not None
    assert "acme.common.v1.Money is declared in common.rpc" in unknown[0].hint
    assert 'import "common.rpc"' in unknown[0].hint  # imports are not transitive
    assert unknown[1].hint is not None and "refer to it as acme.common.v1.Money" in unknown[1].hint


def test_names_resolve_unqualified_in_the_package_and_qualified_across_packages() -> None:
    files = {
        "a.rpc": "package p.v1;\nmessage A { int32 x = 1; }\n",
        "b.rpc": "package q.v1;\nmessage B { int32 x = 1; }\n",
    }
    text = (
        'package p.v1;\nimport "a.rpc";\nimport "b.rpc";\n'
        "message C {\n  A a = 1;\n  p.v1.A qa = 2;\n  q.v1.B b = 3;\n  B unqualified = 4;\n}\n"
    )
    result = load_text(text, "c.rpc", files)
    assert [(d.code, d.span.line) for d in result.diagnostics] == [("unknown-type", 8)]


def test_duplicate_type_across_files_of_one_package() -> None:
    files = {"other.rpc": "package p.v1;\nmessage Task { int32 x = 1; }\n"}
    text = 'package p.v1;\nimport "other.rpc";\nmessage Task { int32 y = 1; }\n'
    result = load_text(text, "main.rpc", files)
    dups = [d for d in result.diagnostics if d.code == "duplicate-name"]
    assert len(dups) == 1
    assert dups[0].hint is not None and "other.rpc:2:9" in dups[0].hint


def test_checker_collects_every_problem_of_a_file_in_one_run() -> None:
    text = (
        "package p.v1;\n"
        "message M {\n  Unknown a = 0;\n  string a = 2;\n}\n"
        "service S {\n  @hedge(after = 1s, attempts = 2)\n  rpc X(M) returns (M);\n}\n"
    )
    codes = [d.code for d in load_text(text).diagnostics]
    assert codes == [
        "unknown-type",
        "field-number-range",
        "duplicate-name",
        "hedge-without-idempotent",
    ]


def test_warnings_do_not_make_a_load_fail() -> None:
    text = (
        "package p.v1;\nmessage M { string id = 1; }\n"
        "service S {\n  @retry(attempts = 3, on = [UNAVAILABLE, RESOURCE_EXHAUSTED])\n"
        "  rpc X(M) returns (M);\n}\n"
    )
    result = load_text(text)
    assert [(d.code, d.severity) for d in result.diagnostics] == [
        ("retry-after-dispatch", Severity.WARNING)
    ]
    assert result.ok


_SPEC_LINES = (Path(__file__).parent / "schemas" / "compute.rpc").read_text().splitlines()
_NOISE = [
    "optional",
    "list<int32>",
    "map<Task,int32>",
    "Task",
    "Overloaded",
    "ComputeService",
    "stream",
    "-5",
    "99999999999999999999",
    "acme.common.v1.Nope",
    "reserved 1 to 0;",
    "@retry(on=[Task, 1], backoff=Task..1, multiplier=true)",
    "@hedge(after=1, non_fatal=OK)",
    "@idempotent(key=[a])",
    "@status",
    "@timeout(per_attempt=1s)",
    "@x(1..2..3)",
    "}",
    ";",
]


@settings(derandomize=True, max_examples=60, deadline=None)
@given(
    edits=st.lists(
        st.tuples(
            st.integers(0, len(_SPEC_LINES) - 1),
            st.integers(0, 8),
            st.sampled_from(_NOISE),
            st.booleans(),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_schemas_give_diagnostics_never_exceptions(
    edits: list[tuple[int, int, str, bool]],
) -> None:
    lines = list(_SPEC_LINES)
    for line, position, word, replace in edits:
        words = lines[line].split(" ")
        index = min(position, len(words) - 1)
        if replace:
            words[index] = word
        else:
            words.insert(index, word)
        lines[line] = " ".join(words)
    files = {"common.rpc": "package acme.common.v1;\nmessage Money { int64 units = 1; }\n"}
    result = load_text("\n".join(lines), "compute.rpc", files)
    for d in result.diagnostics:
        assert d.code in CODES
        assert d.span.line >= 1 and d.span.column >= 1


def test_unknown_type_hints_name_scalars_and_familiar_aliases() -> None:
    text = "package p.v1;\nmessage M {\n  int a = 1;\n  strin b = 2;\n  Double c = 3;\n}\n"
    hints = [d.hint for d in load_text(text).diagnostics]
    assert hints == ["write int32 or int64", "did you mean string?", "write float64"]


def test_enum_value_diagnostics_point_at_the_name_token() -> None:
    """The parser records each enum value's name span: a comment naming the value before it
    (which a search of the source text could match) does not move the diagnostic."""
    text = "package p.v1;\nenum E {\n  A = 0;\n  @deprecated // A again\n  A = 1;\n}\n"
    [diagnostic] = load_text(text, "e.rpc").diagnostics
    assert diagnostic.code == "duplicate-name"
    assert (diagnostic.span.line, diagnostic.span.column) == (5, 3)
    assert (diagnostic.span.end_line, diagnostic.span.end_column) == (5, 4)
