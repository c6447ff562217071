"""The README's main command: generate the example's stubs, then run the quickstart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_runs_every_call_kind_over_quic() -> None:
    generate = subprocess.run(
        [sys.executable, "-m", "rpcnet_idl.cli", "examples/compute.rpc", "-o", "examples/gen"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert generate.returncode == 0, generate.stderr
    run = subprocess.run(
        [sys.executable, "examples/quickstart/quickstart.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[-1] == "quickstart done"
    assert any("process(t1) -> done: b'6'" in line for line in lines)
    assert any("the handler ran 1 time(s)" in line for line in lines)
    assert any("Overloaded(reason='queue full', queue_depth=64)" in line for line in lines)
    assert any("['QUEUED', 'RUNNING', 'SUCCEEDED']" in line for line in lines)
    assert any("8192 bytes" in line for line in lines)
    assert any("['stream-0', 'stream-1', 'stream-2']" in line for line in lines)


def test_cluster_example_loses_no_call_when_a_worker_is_killed() -> None:
    run = subprocess.run(
        [sys.executable, "examples/cluster/run.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert any(line.startswith("  SIGKILLed worker") for line in lines)
    assert "calls: 800, failed: 0" in lines
    assert lines[-1] == "NO CALL FAILED"
