"""`--against git:REF` in temporary repositories: reading a commit without checking it out."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from rpcnet_idl import sources
from rpcnet_idl.checks_cli import main
from rpcnet_idl.sources import SourceError, open_old

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

HEAD = "package p.v1;\n"
OLD = HEAD + 'import "c.rpc";\nmessage M { string a = 1; int32 b = 2; Shared s = 3; }\n'
NEW = HEAD + 'import "c.rpc";\nmessage M { string a = 1; Shared s = 3; }\n'
SHARED = HEAD + "message Shared { string x = 1; }\nmessage Extra {}\n"


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    for key, value in {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }.items():
        monkeypatch.setenv(key, value)


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout


def make_repo(root: Path) -> Path:
    schemas = root / "schemas"
    (root / "common").mkdir(parents=True)
    schemas.mkdir()
    (schemas / "a.rpc").write_text(OLD)
    (root / "common" / "c.rpc").write_text(SHARED)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "v1")
    return root


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return main(argv, out, err), out.getvalue(), err.getvalue()


def test_against_head_reads_the_commit_not_the_work_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "schemas" / "a.rpc").write_text(NEW)
    (repo / "common" / "c.rpc").write_text(HEAD + "message Shared { string x = 1; }\n")
    monkeypatch.chdir(repo)
    argv = ["breaking", "schemas/a.rpc", "-I", "common", "--against", "git:HEAD"]
    code, out, _ = run([*argv, "--format", "json"])
    items = json.loads(out)["diagnostics"]
    assert code == 1
    assert {(i["code"], i["path"], i["old"]["path"]) for i in items} == {
        ("FIELD_NO_DELETE", "schemas/a.rpc", "HEAD:schemas/a.rpc"),
        ("MESSAGE_NO_DELETE", "common/c.rpc", "HEAD:common/c.rpc"),
    }
    # nothing was checked out: the work tree and the index are as they were
    assert (repo / "schemas" / "a.rpc").read_text() == NEW
    assert git(repo, "status", "--porcelain").split() == ["M", "common/c.rpc", "M", "schemas/a.rpc"]


def test_from_a_subfolder_and_against_a_branch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo")
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "schemas" / "a.rpc").write_text(NEW)
    git(repo, "commit", "-q", "-am", "drop b")
    monkeypatch.chdir(repo / "schemas")
    code, out, _ = run(
        ["breaking", "a.rpc", "-I", "../common", "--against", "git:main", "--format", "json"]
    )
    assert code == 1
    assert [i["code"] for i in json.loads(out)["diagnostics"]] == ["FIELD_NO_DELETE"]
    code, out, _ = run(["breaking", "a.rpc", "-I", "../common", "--against", "git:feature"])
    assert (code, out) == (0, "")


def test_file_new_at_ref_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "schemas" / "b.rpc").write_text(HEAD + "message B {}\n")
    monkeypatch.chdir(repo)
    code, out, err = run(["breaking", "schemas/b.rpc", "--against", "git:HEAD"])
    assert (code, out) == (0, "")
    assert "not in git:HEAD (new): schemas/b.rpc" in err


def test_missing_ref(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path / "repo")
    monkeypatch.chdir(repo)
    code, _, err = run(["breaking", "schemas/a.rpc", "-I", "common", "--against", "git:nope"])
    assert code == 2
    assert "unknown git ref 'nope'" in err
    code, _, err = run(
        ["breaking", "schemas/a.rpc", "-I", "common", "--against", "git:origin/main"]
    )
    assert code == 2 and "git fetch origin main" in err


def test_shallow_clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "schemas" / "a.rpc").write_text(NEW)
    git(repo, "commit", "-q", "-am", "v2")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo}", str(clone))
    monkeypatch.chdir(clone)
    code, _, err = run(["breaking", "schemas/a.rpc", "-I", "common", "--against", "git:HEAD~1"])
    assert code == 2
    assert "shallow" in err and "fetch-depth: 0" in err
    code, _, _ = run(["breaking", "schemas/a.rpc", "-I", "common", "--against", "git:HEAD"])
    assert code == 0


def test_not_a_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.rpc").write_text(HEAD)
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["breaking", "a.rpc", "--against", "git:main"])
    assert code == 2 and "not inside a git repository" in err
    with pytest.raises(SourceError, match="give a ref"), open_old("git:", ["a.rpc"]):
        pass


def test_paths_outside_the_repository(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (tmp_path / "outside.rpc").write_text(HEAD)
    with (
        pytest.raises(SourceError, match="outside"),
        open_old("git:HEAD", [str(tmp_path / "outside.rpc")], cwd=repo),
    ):
        pass


def test_reading_a_commit_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path / "repo")
    monkeypatch.setattr(sources, "MAX_GIT_BYTES", len(OLD) + len(SHARED) - 1)
    with (
        pytest.raises(SourceError, match="more than the limit"),
        open_old("git:HEAD", ["schemas/a.rpc"], cwd=repo),
    ):
        pass
    monkeypatch.setattr(sources, "MAX_GIT_BYTES", len(OLD) + len(SHARED))
    with open_old("git:HEAD", ["schemas/a.rpc"], cwd=repo) as old:
        assert [Path(p).read_text() for p in old.roots] == [OLD]
        assert old.display(old.roots[0]) == "HEAD:schemas/a.rpc"
