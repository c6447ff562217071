"""Where the old version of the schemas comes from: a file, a directory or ``git:REF``.

`open_old` turns the `--against` argument into an `OldVersion`: paths to load, the include
directories to load them with, a map from an old file's key (its resolved path) to the key the
same file has in the new version, and how to show old paths in findings.

``git:REF`` reads every ``.rpc`` blob of the commit with ``git ls-tree`` and ``git cat-file``
(never checking anything out, never touching the work tree or the index) into a private
temporary folder that lives as long as the context manager.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["MAX_GIT_BYTES", "MAX_GIT_FILES", "OldVersion", "SourceError", "open_old"]

MAX_GIT_FILES = 10_000
MAX_GIT_BYTES = 64 * 1024 * 1024
"""Bounds on the `.rpc` files read from one commit."""


class SourceError(Exception):
    """The old version cannot be read: a missing path or ref, a shallow clone, no git."""


@dataclass
class OldVersion:
    description: str
    """What `--against` named, for messages: ``git:origin/main``, ``old/``."""
    roots: list[str]
    """The old counterparts of the new roots that exist, in the same order."""
    include_dirs: list[str]
    key_map: Callable[[str], str]
    """An old file's key (resolved path) -> the key of the same file in the new version."""
    display: Callable[[str], str]
    """An old file's path as loaded -> how findings show it."""
    missing: list[str] = field(default_factory=list)
    """New roots that have no old counterpart (new files)."""


def _rebase(old_base: Path, new_base: Path) -> Callable[[str], str]:
    def key_map(key: str) -> str:
        try:
            relative = Path(key).relative_to(old_base)
        except ValueError:
            return key
        return str(new_base / relative)

    return key_map


def _relative_to(path: str, base: Path, cwd: Path, what: str) -> Path:
    full = (cwd / path).resolve() if not os.path.isabs(path) else Path(path).resolve()
    try:
        return full.relative_to(base)
    except ValueError:
        raise SourceError(f"{path} is outside {base}, so it has no counterpart in {what}") from None


def _from_directory(
    directory: Path, roots: Sequence[str], include_dirs: Sequence[str], cwd: Path, spec: str
) -> OldVersion:
    base = directory.resolve()
    old_roots, missing = [], []
    for root in roots:
        candidate = base / _relative_to(root, cwd, cwd, spec)
        if candidate.is_file():
            old_roots.append(_shown(candidate, cwd))
        else:
            missing.append(root)
    includes = [_shown(base / _relative_to(d, cwd, cwd, spec), cwd) for d in include_dirs]
    return OldVersion(spec, old_roots, includes, _rebase(base, cwd), lambda p: p, missing)


def _shown(path: Path, cwd: Path) -> str:
    """`path` relative to `cwd` when it is inside it (shorter messages), else absolute."""
    try:
        return path.relative_to(cwd).as_posix()
    except ValueError:
        return path.as_posix()


def _from_file(
    path: Path, roots: Sequence[str], include_dirs: Sequence[str], cwd: Path
) -> OldVersion:
    if len(roots) != 1:
        raise SourceError(
            f"--against {path} is a single file, but {len(roots)} schemas were given; "
            "pass a directory or git:REF to compare several"
        )
    new_root = (cwd / roots[0]).resolve()
    old_root = path.resolve()
    beside = _rebase(old_root.parent, new_root.parent)

    def exact(key: str) -> str:
        return str(new_root) if key == str(old_root) else beside(key)

    return OldVersion(str(path), [str(path)], list(include_dirs), exact, lambda p: p)


def _git(
    args: Sequence[str], cwd: Path, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        check=False,
        timeout=120,
    )


def _git_text(args: Sequence[str], cwd: Path) -> str | None:
    done = _git(args, cwd)
    return done.stdout.decode().strip() if done.returncode == 0 else None


def _check_ref(ref: str, cwd: Path) -> str:
    commit = _git_text(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd)
    if commit:
        return commit
    shallow = _git_text(["rev-parse", "--is-shallow-repository"], cwd) == "true"
    if shallow:
        raise SourceError(
            f"git ref {ref!r} is not in this clone, which is shallow: fetch the history "
            "(`git fetch --unshallow`, or `fetch-depth: 0` in actions/checkout) and the ref "
            f"(`git fetch origin {ref.removeprefix('origin/')}`)"
        )
    raise SourceError(
        f"unknown git ref {ref!r}: no branch, tag or commit of that name here"
        + (f" (fetch it: `git fetch origin {ref.removeprefix('origin/')}`)" if "/" in ref else "")
    )


def _read_blobs(commit: str, cwd: Path) -> dict[str, bytes]:
    """Every ``.rpc`` blob of `commit`, by path from the repository root (sizes bounded)."""
    listing = _git(["ls-tree", "-r", "-l", "-z", "--full-tree", commit], cwd)
    if listing.returncode != 0:
        raise SourceError(f"git ls-tree {commit} failed: {listing.stderr.decode().strip()}")
    wanted: dict[str, str] = {}
    total = 0
    for entry in listing.stdout.split(b"\0"):
        meta, _, raw_path = entry.partition(b"\t")
        fields = meta.decode().split()
        path = raw_path.decode("utf-8", "surrogateescape")
        if len(fields) != 4 or fields[1] != "blob" or not path.endswith(".rpc"):
            continue
        wanted[path] = fields[2]
        total += int(fields[3])
    if len(wanted) > MAX_GIT_FILES or total > MAX_GIT_BYTES:
        raise SourceError(
            f"{commit} holds {len(wanted)} .rpc files of {total} bytes, more than the limit of "
            f"{MAX_GIT_FILES} files or {MAX_GIT_BYTES} bytes"
        )
    batch = _git(["cat-file", "--batch"], cwd, "".join(f"{o}\n" for o in wanted.values()).encode())
    if batch.returncode != 0:
        raise SourceError(f"git cat-file failed: {batch.stderr.decode().strip()}")
    out: dict[str, bytes] = {}
    data, at = batch.stdout, 0
    for path in wanted:
        end = data.index(b"\n", at)
        header = data[at:end].split()
        if len(header) != 3:
            raise SourceError(f"git cat-file could not read {path} at {commit}")
        size = int(header[2])
        out[path] = data[end + 1 : end + 1 + size]
        at = end + 1 + size + 1
    return out


def _from_git(
    ref: str, roots: Sequence[str], include_dirs: Sequence[str], cwd: Path, tmp: Path
) -> OldVersion:
    if shutil.which("git") is None:
        raise SourceError(f"--against git:{ref} needs git, which is not on PATH")
    top_text = _git_text(["rev-parse", "--show-toplevel"], cwd)
    if not top_text:
        raise SourceError(f"--against git:{ref}: {cwd} is not inside a git repository")
    top = Path(top_text).resolve()
    commit = _check_ref(ref, cwd)
    for path, blob in _read_blobs(commit, cwd).items():
        parts = posixpath.normpath(path).split("/")
        if ".." in parts or path.startswith("/"):
            continue
        target = tmp.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)
    spec = f"git:{ref}"
    old_roots, missing = [], []
    for root in roots:
        candidate = tmp / _relative_to(root, top, cwd, spec)
        if candidate.is_file():
            old_roots.append(str(candidate))
        else:
            missing.append(root)
    includes = [str(tmp / _relative_to(d, top, cwd, spec)) for d in include_dirs]

    def display(path: str) -> str:
        try:
            return f"{ref}:{Path(path).resolve().relative_to(tmp).as_posix()}"
        except ValueError:
            return path

    return OldVersion(spec, old_roots, includes, _rebase(tmp, top), display, missing)


@contextmanager
def open_old(
    spec: str, roots: Sequence[str], include_dirs: Sequence[str] = (), cwd: Path | None = None
) -> Iterator[OldVersion]:
    """The old version named by `spec` (a file, a directory or ``git:REF``) for `roots`."""
    here = (cwd or Path.cwd()).resolve()
    if spec.startswith("git:"):
        ref = spec[4:]
        if not ref or ref.startswith("-"):
            raise SourceError(f"--against {spec!r}: give a ref after git:, such as git:origin/main")
        with tempfile.TemporaryDirectory(prefix="rpcnet-old-") as folder:
            yield _from_git(ref, roots, include_dirs, here, Path(folder).resolve())
        return
    path = Path(spec) if os.path.isabs(spec) else here / spec
    if path.is_dir():
        yield _from_directory(path, roots, include_dirs, here, spec)
    elif path.is_file():
        yield _from_file(path, roots, include_dirs, here)
    else:
        raise SourceError(
            f"--against {spec!r}: no such file or directory (for a git ref write git:{spec})"
        )
