"""Lint rules (one bad and one good schema per rule) and `[tool.rpcnet.lint]` configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpcnet_idl.ast import Span
from rpcnet_idl.diagnostics import Diagnostic, Severity
from rpcnet_idl.lint import RULES, lint, rule_table
from rpcnet_idl.lint_config import (
    LintConfig,
    LintConfigError,
    find_config,
    load_config,
    parse_config,
)
from rpcnet_idl.lint_rules import to_pascal, to_snake, to_upper_snake
from rpcnet_idl.loader import load_text

HEAD = "package p.v1;\n"
MSGS = "message Req { string id = 1; }\nmessage Resp { string v = 1; }\n"
ALL = LintConfig(enable=frozenset({"ALL"}))


def svc(method: str, service_prefix: str = "/// Doc.\n") -> str:
    return HEAD + MSGS + f"{service_prefix}service S {{\n/// Doc.\n{method}\n}}\n"


CASES: dict[str, tuple[str, str, tuple[int, int]]] = {
    # rule: (bad schema, good schema, (line, column) of the finding in the bad one)
    "PACKAGE_LOWER_DOT_CASE": ("package Acme.V1;\n", HEAD, (1, 9)),
    "PACKAGE_VERSION_SUFFIX": ("package acme.compute;\n", HEAD, (1, 9)),
    "TYPE_PASCAL_CASE": (HEAD + "message task_info {}\n", HEAD + "message TaskInfo {}\n", (2, 9)),
    "SERVICE_PASCAL_CASE": (
        svc("rpc Get(Req) returns (Resp);").replace("service S", "service my_svc"),
        svc("rpc Get(Req) returns (Resp);"),
        (5, 9),
    ),
    "RPC_PASCAL_CASE": (
        svc("rpc get_it(Req) returns (Resp);"),
        svc("rpc GetIt(Req) returns (Resp);"),
        (7, 5),
    ),
    "FIELD_LOWER_SNAKE_CASE": (
        HEAD + "message M { string shardId = 1; }\n",
        HEAD + "message M { string shard_id = 1; }\n",
        (2, 20),
    ),
    "ENUM_VALUE_UPPER_SNAKE_CASE": (
        HEAD + "enum E {\n  @deprecated\n  eUnspecified = 0;\n}\n",
        HEAD + "enum E { E_UNSPECIFIED = 0; }\n",
        (4, 3),
    ),
    "ENUM_ZERO_VALUE_FIRST": (
        HEAD + "enum E { E_LOW = 1; E_UNSPECIFIED = 0; }\n",
        HEAD + "enum E { E_UNSPECIFIED = 0; E_LOW = 1; }\n",
        (2, 18),
    ),
    "ENUM_ZERO_VALUE_SUFFIX": (
        HEAD + "enum E { E_NONE = 0; }\n",
        HEAD + "enum E { E_UNSPECIFIED = 0; }\n",
        (2, 10),
    ),
    "SERVICE_COMMENTS": (
        svc("rpc Get(Req) returns (Resp);", service_prefix=""),
        svc("rpc Get(Req) returns (Resp);"),
        (4, 9),
    ),
    "RPC_COMMENTS": (
        svc("rpc Get(Req) returns (Resp);").replace("/// Doc.\nrpc", "rpc"),
        svc("rpc Get(Req) returns (Resp);"),
        (6, 5),
    ),
    "DEPRECATED_USE": (
        HEAD + "@deprecated\nmessage Old {}\nmessage M { list<Old> olds = 1; }\n",
        HEAD + "@deprecated\nmessage Old {}\nmessage M {\n  @deprecated\n  Old old = 1;\n}\n",
        (4, 18),
    ),
    "RETRY_NON_IDEMPOTENT_AFTER_DISPATCH": (
        svc(
            "@retry(attempts = 3, on = [UNAVAILABLE, FAILED_PRECONDITION])\n"
            "rpc Get(Req) returns (Resp);"
        ),
        svc(
            "@retry(attempts = 3, on = [UNAVAILABLE, RESOURCE_EXHAUSTED])\n"
            "rpc Get(Req) returns (Resp);"
        ),
        (7, 41),
    ),
    "RETRY_ON_PERMANENT_STATUS": (
        svc("@idempotent\n@retry(attempts = 3, on = [NOT_FOUND])\nrpc Get(Req) returns (Resp);"),
        svc("@idempotent\n@retry(attempts = 3, on = [ABORTED])\nrpc Get(Req) returns (Resp);"),
        (8, 28),
    ),
    "HEDGE_DELAY_EXCEEDS_TIMEOUT": (
        svc(
            "@idempotent\n@timeout(1s)\n@hedge(after = 400ms, attempts = 4)\n"
            "rpc Get(Req) returns (Resp);"
        ),
        svc(
            "@idempotent\n@timeout(1s)\n@hedge(after = 300ms, attempts = 4)\n"
            "rpc Get(Req) returns (Resp);"
        ),
        (9, 16),
    ),
    "RETRY_BACKOFF_EXCEEDS_TIMEOUT": (
        svc("@timeout(1s)\n@retry(attempts = 3, backoff = 10ms..1s)\nrpc Get(Req) returns (Resp);"),
        svc(
            "@timeout(1s)\n@retry(attempts = 3, backoff = 10ms..200ms)\n"
            "rpc Get(Req) returns (Resp);"
        ),
        (8, 32),
    ),
    "ATTEMPT_TIMEOUT_EXCEEDS_TIMEOUT": (
        svc("@timeout(1s, per_attempt = 1s)\nrpc Get(Req) returns (Resp);"),
        svc("@timeout(1s, per_attempt = 300ms)\nrpc Get(Req) returns (Resp);"),
        (7, 28),
    ),
    "RETRY_WITHOUT_TIMEOUT": (
        svc("@retry(attempts = 3)\nrpc Get(Req) returns (Resp);"),
        svc("@retry(attempts = 3)\nrpc Get(Req) returns (Resp);", "/// Doc.\n@timeout(5s)\n"),
        (7, 1),
    ),
}


def codes_at(text: str, config: LintConfig = ALL) -> dict[str, list[tuple[int, int]]]:
    result = load_text(text, "s.rpc")
    assert result.ok, result.diagnostics
    found: dict[str, list[tuple[int, int]]] = {}
    for f in lint(result.program, config):  # the checker's twins: test_checker_duplicate...
        found.setdefault(f.code, []).append((f.span.line, f.span.column))
    return found


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_bad_and_good(rule_id: str) -> None:
    bad, good, where = CASES[rule_id]
    assert where in codes_at(bad).get(rule_id, []), codes_at(bad)
    assert rule_id not in codes_at(good)


def test_every_rule_has_a_case() -> None:
    assert set(CASES) == set(RULES)


def test_good_schema_is_clean_under_every_rule() -> None:
    text = svc(
        "@idempotent(key = id)\n@timeout(2s)\n@retry(attempts = 3, backoff = 10ms..100ms)\n"
        "rpc Get(Req) returns (Resp);"
    )
    assert codes_at(text) == {}


def test_findings_carry_rule_category_and_severity() -> None:
    result = load_text(CASES["DEPRECATED_USE"][0], "s.rpc")
    (finding,) = lint(result.program, ALL)
    assert (finding.code, finding.category, finding.severity) == (
        "DEPRECATED_USE",
        "deprecation",
        Severity.WARNING,
    )
    assert finding.source_line == "message M { list<Old> olds = 1; }"
    assert finding.hint


def test_defaults_skip_optional_rules() -> None:
    bad = svc("rpc Get(Req) returns (Resp);", service_prefix="").replace(
        "package p.v1", "package p"
    )
    assert set(codes_at(bad, LintConfig())) == set()
    assert {"PACKAGE_VERSION_SUFFIX", "SERVICE_COMMENTS"} <= set(codes_at(bad))


def test_enable_disable_and_categories() -> None:
    bad = HEAD + "enum e { low = 1; }\n"
    assert set(codes_at(bad, LintConfig())) == {
        "TYPE_PASCAL_CASE",
        "ENUM_VALUE_UPPER_SNAKE_CASE",
        "ENUM_ZERO_VALUE_FIRST",
    }
    no_naming = LintConfig(disable=frozenset({"NAMING"}))
    assert set(codes_at(bad, no_naming)) == {"ENUM_ZERO_VALUE_FIRST"}
    some = LintConfig(enable=frozenset({"ENUM_ZERO_VALUE_SUFFIX"}), disable=frozenset({"STYLE"}))
    assert set(codes_at(bad, some)) == {"TYPE_PASCAL_CASE", "ENUM_VALUE_UPPER_SNAKE_CASE"}


def test_per_file_exceptions(tmp_path: Path) -> None:
    config = parse_config(
        {"ignore": {"legacy/*.rpc": ["TYPE_PASCAL_CASE"], "vendor/*": ["all"]}}, tmp_path
    )
    table = rule_table()
    assert config.ignored("legacy/old.rpc", table) == {"TYPE_PASCAL_CASE"}
    assert config.ignored(str(tmp_path / "legacy" / "deep" / "x.rpc"), table) == {
        "TYPE_PASCAL_CASE"
    }
    assert config.ignored("vendor/a/b.rpc", table) == set(RULES)
    assert config.ignored("src/new.rpc", table) == set()
    result = load_text(HEAD + "message bad_name {}\n", "legacy/old.rpc")
    assert lint(result.program, config) == []


def test_unknown_rule_is_an_error(tmp_path: Path) -> None:
    config = parse_config({"disable": ["NO_SUCH_RULE"]}, tmp_path, "pyproject.toml")
    result = load_text(HEAD, "s.rpc")
    with pytest.raises(LintConfigError, match="NO_SUCH_RULE"):
        lint(result.program, config)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"enable": "ALL"}, "list of strings"),
        ({"disable": [1]}, "list of strings"),
        ({"ignore": ["x"]}, "must be a table"),
        ({"ignore": {"*.rpc": "ALL"}}, "list of strings"),
        ({"enabled": []}, "unknown key"),
    ],
)
def test_bad_config_values(table: dict[str, object], message: str, tmp_path: Path) -> None:
    with pytest.raises(LintConfigError, match=message):
        parse_config(table, tmp_path)


def test_config_file_found_walking_up(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.rpcnet.lint]\nenable = ["comments"]\n'
        '[tool.rpcnet.lint.ignore]\n"gen/*" = ["ALL"]\n'
    )
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    found = find_config(deep)
    assert found == tmp_path / "pyproject.toml"
    config = load_config(found)
    assert config.enable == {"COMMENTS"}
    assert config.ignore == (("gen/*", frozenset({"ALL"})),)
    assert config.root == tmp_path.resolve()


def test_config_file_errors(tmp_path: Path) -> None:
    broken = tmp_path / "pyproject.toml"
    broken.write_text("[tool.rpcnet.lint\n")
    with pytest.raises(LintConfigError, match="not valid TOML"):
        load_config(broken)
    with pytest.raises(LintConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    broken.write_text("[tool.rpcnet]\nlint = 3\n")
    with pytest.raises(LintConfigError, match="must be a table"):
        load_config(broken)
    broken.write_text('[project]\nname = "x"\n')
    assert load_config(broken).enable == frozenset()


def test_checker_duplicate_is_dropped() -> None:
    bad, _, (line, column) = CASES["RETRY_NON_IDEMPOTENT_AFTER_DISPATCH"]
    result = load_text(bad, "s.rpc")
    twin = Diagnostic("s.rpc", Span(line, column, line, column + 7), "retry-after-dispatch", "x")
    codes = {f.code for f in lint(result.program, ALL, [twin])}
    assert "RETRY_NON_IDEMPOTENT_AFTER_DISPATCH" not in codes


@pytest.mark.parametrize(
    ("name", "pascal", "snake", "upper"),
    [
        ("shardId", "ShardId", "shard_id", "SHARD_ID"),
        ("task_info", "TaskInfo", "task_info", "TASK_INFO"),
        ("HTTPServer2", "HttpServer2", "http_server_2", "HTTP_SERVER_2"),
    ],
)
def test_name_conversions(name: str, pascal: str, snake: str, upper: str) -> None:
    assert (to_pascal(name), to_snake(name), to_upper_snake(name)) == (pascal, snake, upper)


def test_enum_value_name_on_its_own_line() -> None:
    """The finding marks the value's name even when ``=`` and the number are on a later line."""
    text = HEAD + "enum E {\n  e_unspecified\n    = 0;\n}\n"
    assert codes_at(text)["ENUM_VALUE_UPPER_SNAKE_CASE"] == [(3, 3)]
