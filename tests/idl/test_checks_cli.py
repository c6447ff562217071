"""The `lint`/`breaking` command line: exit codes, formats, the documented JSON shape, docs."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from rpcnet_idl.breaking_rules import BREAKING_RULES
from rpcnet_idl.checks_cli import main
from rpcnet_idl.lint import RULES

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "schema-checks.md"
HEAD = "package p.v1;\n"
GOOD = HEAD + "enum E { E_UNSPECIFIED = 0; }\nmessage M { string a = 1; int32 b = 2; }\n"
BAD = HEAD + "enum E { E_LOW = 1; }\nmessage M { string a = 1; }\n"


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return main(argv, out, err), out.getvalue(), err.getvalue()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    return tmp_path


# --- the documented JSON shape ------------------------------------------------------------


def documented_shape() -> dict[str, Any]:
    text = DOCS.read_text()
    match = re.search(r"<!-- json-shape -->\s*```json\n(.*?)```", text, re.S)
    assert match, "docs/schema-checks.md has no json-shape block"
    shape: dict[str, Any] = json.loads(match.group(1))
    return shape


_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "null": type(None),
}


def validate(value: Any, schema: dict[str, Any], where: str = "$") -> None:
    """The subset of JSON Schema the documented shape uses."""
    if "const" in schema:
        assert value == schema["const"], where
    if "enum" in schema:
        assert value in schema["enum"], (where, value)
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        ok = any(isinstance(value, _TYPES[k]) and not isinstance(value, bool) for k in kinds)
        assert ok, (where, value, kinds)
    if isinstance(value, dict):
        for key in schema.get("required", []):
            assert key in value, (where, key)
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            assert set(value) <= set(properties), (where, set(value) - set(properties))
        for key, item in value.items():
            if key in properties:
                validate(item, properties[key], f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            validate(item, schema["items"], f"{where}[{index}]")


def test_validator_rejects_wrong_shapes() -> None:
    shape = documented_shape()
    validate({"version": 1, "diagnostics": []}, shape)
    bad: dict[str, Any]
    for bad in (
        {"diagnostics": []},
        {"version": 2, "diagnostics": []},
        {"version": 1, "diagnostics": [{"path": "a"}]},
        {"version": 1, "diagnostics": [], "extra": 1},
    ):
        with pytest.raises(AssertionError):
            validate(bad, shape)


def test_docs_example_matches_the_shape() -> None:
    text = DOCS.read_text()
    example = re.search(r"\*\*json\*\*.*?```json\n(.*?)```", text, re.S)
    assert example
    validate(json.loads(example.group(1)), documented_shape())


def test_lint_json_matches_the_documented_shape(project: Path) -> None:
    (project / "bad.rpc").write_text(BAD)
    (project / "broken.rpc").write_text(HEAD + "message M { Missing m = 1; }\n")
    code, out, _ = run(["lint", "bad.rpc", "--format", "json"])
    document = json.loads(out)
    validate(document, documented_shape())
    assert code == 1
    assert {d["code"] for d in document["diagnostics"]} == {"ENUM_ZERO_VALUE_FIRST"}
    code, out, _ = run(["lint", "broken.rpc", "--format", "json"])
    document = json.loads(out)
    validate(document, documented_shape())
    assert code == 1
    assert [(d["code"], d["category"]) for d in document["diagnostics"]] == [("unknown-type", None)]


def test_breaking_json_matches_the_documented_shape(project: Path) -> None:
    (project / "old").mkdir()
    (project / "old" / "a.rpc").write_text(GOOD)
    (project / "a.rpc").write_text(BAD)
    code, out, _ = run(["breaking", "a.rpc", "--against", "old", "--format", "json"])
    document = json.loads(out)
    validate(document, documented_shape())
    assert code == 1
    assert {d["code"] for d in document["diagnostics"]} == {
        "ENUM_VALUE_NO_DELETE",
        "FIELD_NO_DELETE",
    }
    assert all(d["old"]["path"] == "old/a.rpc" for d in document["diagnostics"])


def test_empty_json_when_clean(project: Path) -> None:
    (project / "a.rpc").write_text(GOOD)
    code, out, err = run(["lint", "a.rpc", "--format", "json"])
    assert code == 0
    assert json.loads(out) == {"version": 1, "diagnostics": []}
    assert err == ""


# --- lint command -------------------------------------------------------------------------


def test_lint_text_and_github(project: Path) -> None:
    (project / "a.rpc").write_text(BAD)
    code, out, err = run(["lint", "a.rpc"])
    assert code == 1
    assert out.startswith("a.rpc:2:18: error[ENUM_ZERO_VALUE_FIRST]: the first value of enum E")
    assert "category: style" in out
    assert "lint: 1 error(s), 0 warning(s)" in err
    code, out, _ = run(["lint", "a.rpc", "--format", "github"])
    assert code == 1
    assert out.startswith("::error file=a.rpc,line=2,col=18,")
    assert "title=ENUM_ZERO_VALUE_FIRST (style)::" in out


def test_lint_config_from_pyproject_and_flag(project: Path) -> None:
    (project / "a.rpc").write_text(BAD)
    (project / "pyproject.toml").write_text('[tool.rpcnet.lint]\ndisable = ["style"]\n')
    assert run(["lint", "a.rpc"])[0] == 0
    other = project / "other.toml"
    other.write_text('[tool.rpcnet.lint]\nenable = ["PACKAGE_VERSION_SUFFIX"]\n')
    assert run(["lint", "a.rpc", "--config", str(other)])[0] == 1
    other.write_text('[tool.rpcnet.lint]\ndisable = ["ENUM_ZERO"]\n')
    code, out, err = run(["lint", "a.rpc", "--config", str(other)])
    assert (code, out) == (2, "")
    assert "unknown lint rule or category" in err and "ENUM_ZERO" in err


def test_lint_warnings_of_the_checker_do_not_fail(project: Path) -> None:
    (project / "a.rpc").write_text(
        HEAD + "message Req { string id = 1; }\nservice S {\n"
        "  @retry(attempts = 2, on = [UNAVAILABLE, RESOURCE_EXHAUSTED])\n"
        "  rpc Get(Req) returns (Req);\n}\n"
    )
    code, out, _ = run(["lint", "a.rpc", "--format", "json"])
    items = json.loads(out)["diagnostics"]
    assert all(item["severity"] == "warning" and item["category"] is None for item in items)
    assert code == 0


def test_usage_errors(project: Path) -> None:
    assert run(["lint"])[0] == 2
    code, _, err = run(["lint", "a.rpc", "--format", "xml"])
    assert code == 2 and "invalid choice: 'xml'" in err
    code, out, _ = run(["breaking", "--help"])
    assert code == 0 and "--against" in out
    assert run(["nothing"])[0] == 2
    assert run(["breaking", "a.rpc", "--against", "x", "--level", "bogus"])[0] == 2


def test_list_rules(project: Path) -> None:
    code, out, _ = run(["lint", "--list-rules", "--format", "json"])
    rows = json.loads(out)["rules"]
    assert code == 0 and {row["id"] for row in rows} == set(RULES)
    code, out, _ = run(["breaking", "--list-rules"])
    assert code == 0
    assert all(rule_id in out for rule_id in BREAKING_RULES)
    assert "(off by default)" in run(["lint", "--list-rules"])[1]


def test_dispatch_from_rpcnet_gen(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rpcnet_idl.cli import main as rpcnet_gen

    (project / "a.rpc").write_text(BAD)
    assert rpcnet_gen(["lint", "a.rpc", "--format", "json"]) == 1
    assert "ENUM_ZERO_VALUE_FIRST" in capsys.readouterr().out


# --- docs and hooks -----------------------------------------------------------------------


def test_docs_list_every_rule_with_its_category() -> None:
    text = DOCS.read_text()
    headings = set(re.findall(r"^#### ([A-Z_]+)$", text, re.M))
    assert headings == set(RULES) | set(BREAKING_RULES)
    for rule in BREAKING_RULES.values():
        assert f"| {rule.id} | {rule.category} |" in text
    for lint_rule in RULES.values():
        default = "on" if lint_rule.default else "off"
        row = f"| {lint_rule.id} | {lint_rule.category} | {default} | {lint_rule.severity.value} |"
        assert row in text


def test_pre_commit_hooks_name_the_three_checks() -> None:
    text = (ROOT / ".pre-commit-hooks.yaml").read_text()
    ids = re.findall(r"^- id: (\S+)$", text, re.M)
    assert ids == ["rpcnet-lint", "rpcnet-breaking", "rpcnet-gen-check"]
    assert "entry: rpcnet-gen lint" in text
    assert "entry: rpcnet-gen breaking" in text
    assert "entry: rpcnet-gen --check" in text
