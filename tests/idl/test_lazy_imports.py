"""rpcnet-gen's start-up: heavy modules are imported only by the code paths that need them."""

from __future__ import annotations

import subprocess
import sys


def _imported_after(statement: str, modules: list[str]) -> list[str]:
    """Which of `modules` a fresh interpreter has imported after running `statement`."""
    probe = f"import sys\n{statement}\nprint(*[m for m in {modules!r} if m in sys.modules])"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout.split()


def test_parsing_imports_neither_jinja2_nor_black() -> None:
    statement = "from rpcnet_idl.parser import parse; parse('package p;', 'p.rpc')"
    heavy = ["jinja2", "black", "rpcnet_runtime", "rpcnet_idl.syntax_examples"]
    assert _imported_after(statement, heavy) == []


def test_generating_short_lines_does_not_import_black() -> None:
    statement = (
        "from rpcnet_idl.loader import load_text; from rpcnet_idl.codegen import generate; "
        "generate(load_text('package p; message M { string s = 1; }', 'p.rpc').program)"
    )
    assert _imported_after(statement, ["black", "jinja2"]) == ["jinja2"]


def test_checking_does_not_import_the_runtime() -> None:
    assert _imported_after("import rpcnet_idl.checker", ["aioquic"]) == []
