"""The stubs checked in for the tests are what the generator makes now (`rpcnet-gen --check`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("schema", "out"),
    [
        ("tests/integration/interop.rpc", "tests/integration/gen"),
        ("tests/integration/policy_test.rpc", "tests/integration/policy_gen/gen"),
    ],
)
def test_checked_in_stubs_are_up_to_date(schema: str, out: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rpcnet_idl.cli", schema, "-o", out, "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
