"""method_policy: annotations read into seconds, defaults filled in, service defaults merged."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcnet_idl import ast
from rpcnet_idl.loader import Program, load, load_text
from rpcnet_idl.policies import (
    DEFAULT_BACKOFF,
    DEFAULT_MULTIPLIER,
    HedgeSpec,
    MethodPolicySpec,
    RetrySpec,
    method_policy,
)

HEAD = "package p.v1;\nmessage M { string id = 1; }\n"


def _policies(text: str, files: dict[str, str] | None = None) -> dict[str, MethodPolicySpec]:
    result = load_text(text, "p.rpc", files)
    assert result.ok, result.diagnostics
    return _all(result.program)


def _all(program: Program) -> dict[str, MethodPolicySpec]:
    schema = program.roots[0]
    found = {}
    for decl in schema.declarations:
        if isinstance(decl, ast.Service):
            for method in decl.methods:
                found[method.name] = method_policy(program, schema, decl, method)
    return found


def test_the_spec_example() -> None:
    result = load([Path(__file__).parent / "schemas" / "compute.rpc"])
    policies = _all(result.program)
    assert policies["Process"] == MethodPolicySpec(
        timeout=2.0,
        attempt_timeout=None,
        idempotent=True,
        key_field="id",
        retry=RetrySpec(
            attempts=4,
            initial_backoff=0.05,
            max_backoff=1.0,
            multiplier=2.0,
            on_statuses=("UNAVAILABLE", "DEADLINE_EXCEEDED"),
            on_errors=("acme.compute.v1.Overloaded",),
        ),
        hedge=None,
        deprecated=None,
    )
    assert policies["Lookup"] == MethodPolicySpec(
        timeout=10.0,
        attempt_timeout=None,
        idempotent=True,
        key_field=None,
        retry=None,
        hedge=HedgeSpec(attempts=2, delay=0.1, non_fatal=()),
        deprecated=None,
    )
    assert policies["Watch"].timeout == 10.0  # the service default
    assert not policies["Watch"].idempotent
    assert policies["Run"].deprecated == "use Process"


def test_retry_defaults() -> None:
    text = HEAD + "service S {\n  @retry(attempts = 3)\n  rpc A(M) returns (M);\n}\n"
    retry = _policies(text)["A"].retry
    assert retry == RetrySpec(
        attempts=3,
        initial_backoff=DEFAULT_BACKOFF[0],
        max_backoff=DEFAULT_BACKOFF[1],
        multiplier=DEFAULT_MULTIPLIER,
        on_statuses=("UNAVAILABLE",),
        on_errors=(),
    )
    assert DEFAULT_BACKOFF == (0.1, 1.0)


def test_timeouts_merge_field_by_field_with_the_service() -> None:
    text = HEAD + (
        "@timeout(10s, per_attempt = 2s)\n@deprecated\nservice S {\n"
        "  rpc Inherits(M) returns (M);\n"
        "  @timeout(1.5s)\n  rpc OwnTotal(M) returns (M);\n"
        '  @timeout(1m, per_attempt = 250ms)\n  @deprecated("gone")\n  rpc Own(M) returns (M);\n'
        "}\n"
    )
    policies = _policies(text)
    got = {n: (p.timeout, p.attempt_timeout, p.deprecated) for n, p in policies.items()}
    assert got == {
        "Inherits": (10.0, 2.0, "deprecated"),
        "OwnTotal": (1.5, 2.0, "deprecated"),
        "Own": (60.0, 0.25, "gone"),
    }


def test_no_annotations_means_no_policy() -> None:
    text = HEAD + "service S {\n  rpc A(M) returns (M);\n}\n"
    assert _policies(text)["A"] == MethodPolicySpec(None, None, False, None, None, None, None)


def test_retry_on_errors_are_fully_qualified_and_statuses_kept_in_order() -> None:
    files = {"errs.rpc": "package e.v1;\nerror Busy { string why = 1; }\n"}
    text = (
        'package p.v1;\nimport "errs.rpc";\nmessage M { string id = 1; }\n'
        "error Local { string why = 1; }\nservice S {\n  @idempotent(key = id)\n"
        "  @retry(attempts = 5, backoff = 10ms..2s, multiplier = 3, "
        "on = [ABORTED, e.v1.Busy, UNAVAILABLE, Local])\n"
        "  rpc A(M) returns (M) throws (e.v1.Busy, Local);\n}\n"
    )
    policy = _policies(text, files)["A"]
    assert policy.key_field == "id"
    assert policy.retry == RetrySpec(
        attempts=5,
        initial_backoff=0.01,
        max_backoff=2.0,
        multiplier=3.0,
        on_statuses=("ABORTED", "UNAVAILABLE"),
        on_errors=("e.v1.Busy", "p.v1.Local"),
    )


def test_hedge_non_fatal_statuses() -> None:
    text = HEAD + (
        "service S {\n  @idempotent\n"
        "  @hedge(after = 0ms, attempts = 3, non_fatal = [UNAVAILABLE, INTERNAL])\n"
        "  rpc A(M) returns (M);\n}\n"
    )
    assert _policies(text)["A"].hedge == HedgeSpec(3, 0.0, ("UNAVAILABLE", "INTERNAL"))


@settings(derandomize=True, deadline=None)
@given(
    total_ms=st.integers(min_value=1, max_value=10**7),
    attempt_ms=st.integers(min_value=1, max_value=10**7),
)
def test_durations_arrive_in_seconds(total_ms: int, attempt_ms: int) -> None:
    total, attempt = max(total_ms, attempt_ms), min(total_ms, attempt_ms)
    text = HEAD + (
        f"service S {{\n  @timeout({total}ms, per_attempt = {attempt}ms)\n"
        "  rpc A(M) returns (M);\n}\n"
    )
    policy = _policies(text)["A"]
    assert policy.timeout == pytest.approx(total / 1000)
    assert policy.attempt_timeout == pytest.approx(attempt / 1000)
