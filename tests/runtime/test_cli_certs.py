"""The ``rpcnet certs DIR`` command, in process and as the installed console script."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rpcnet_runtime import cli
from rpcnet_runtime.tls import ClientTLS, ServerTLS

FILES = ["ca.key", "ca.pem", "client.key", "client.pem", "server.key", "server.pem"]


def test_certs_writes_files_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "dev"
    assert cli.main(["certs", str(target)]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in target.iterdir()) == FILES
    for name in FILES:
        assert str(target / name) in out
    assert "localhost, 127.0.0.1, ::1" in out
    # The printed usage works as printed.
    ServerTLS(str(target / "server.pem"), str(target / "server.key"), str(target / "ca.pem"))
    ClientTLS(str(target / "ca.pem"), str(target / "client.pem"), str(target / "client.key"))


def test_existing_files_need_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["certs", str(tmp_path)]) == 0
    before = (tmp_path / "ca.pem").read_bytes()
    capsys.readouterr()
    assert cli.main(["certs", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "rpcnet certs: error: refusing to overwrite" in captured.err
    assert "--force" in captured.err and "Traceback" not in captured.err
    assert captured.out == ""
    assert (tmp_path / "ca.pem").read_bytes() == before
    assert cli.main(["certs", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "ca.pem").read_bytes() != before


def test_bad_directory_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "plain-file"
    blocker.write_text("x")
    assert cli.main(["certs", str(blocker)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rpcnet certs: error: ") and "not a directory" in err
    assert cli.main(["certs", str(blocker / "below")]) == 1
    err = capsys.readouterr().err
    assert "cannot create directory" in err and "Traceback" not in err


def test_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["certs", str(tmp_path), "--host", "api.test", "--host", "10.0.0.7"]
    argv += ["--client-name", "alice", "--days", "3"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "api.test, 10.0.0.7" in out and "CN=alice" in out and "valid 3 days" in out


def test_bad_days_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["certs", str(tmp_path), "--days", "0"]) == 1
    assert "days must be at least 1" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([])
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        cli.main(["certs"])
    assert exited.value.code == 2
    assert "DIR" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("rpcnet ")


def test_subcommands_come_from_command_modules() -> None:
    assert "rpcnet_runtime.cli" in cli.COMMAND_MODULES
    help_text = cli.build_parser().format_help()
    assert "certs" in help_text


def _console_script() -> list[str]:
    script = Path(sys.executable).with_name("rpcnet")
    if script.exists():
        return [str(script)]
    found = shutil.which("rpcnet")
    if found:
        return [found]
    return [sys.executable, "-m", "rpcnet_runtime.cli"]


def test_console_script(tmp_path: Path) -> None:
    ok = subprocess.run(
        [*_console_script(), "certs", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert str(tmp_path / "out" / "ca.pem") in ok.stdout
    bad = subprocess.run(
        [*_console_script(), "certs", str(tmp_path / "out" / "ca.pem")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 1
    assert "rpcnet certs: error:" in bad.stderr and "Traceback" not in bad.stderr
