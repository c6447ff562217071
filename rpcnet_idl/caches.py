"""Per-user caches of rpcnet-gen's start-up work: Lark's parse tables, compiled templates.

Building the LALR tables of ``grammars/rpcnet.lark`` takes ~50 ms, loading them ~5 ms;
compiling the Jinja2 templates takes ~30 ms. The cache files live in the user's cache directory
(``$RPCNET_CACHE_DIR``, else ``$XDG_CACHE_HOME/rpcnet``, else ``~/.cache/rpcnet``), never next to
the installed package. A parse-table file is named by a hash of the grammar text, the parser
options, Lark's version and Python's version, so a changed grammar or upgraded Lark never reads
stale tables; Jinja2 checks each template's source checksum itself, and its files are also
keyed by Jinja2's version and the environment's options. The files are pickles and marshalled
code, so they are only read from a directory owned by the current user and writable by no one
else. Any problem (unwritable directory, corrupt or foreign file) falls back silently to doing
the work. Set ``RPCNET_CACHE_DIR`` to an empty string to turn the caches off.

The caches are bounded: whenever a new entry is written, entries of the same kind from other
versions (another grammar hash, another template-cache key) are removed, all but the
`KEEP` - 1 most recently written, so switching between a few installs never rebuilds (`prune`).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lark

if TYPE_CHECKING:  # Jinja2 is imported only by code generation, not by parsing alone
    import jinja2

__all__ = ["KEEP", "cache_dir", "cache_path", "load_lark", "prune", "template_cache"]

_HASHED_OPTIONS = ("parser", "lexer", "propagate_positions", "maybe_placeholders")

KEEP = 3
"""Versions of each kind of entry kept, the one in use included."""

# The file names this module writes; the group is the version an entry belongs to.
_LARK_ENTRY = re.compile(r"lark-(?P<version>[0-9a-f]{32})\.pickle")
_TEMPLATE_ENTRY = re.compile(r"jinja2-(?P<version>[0-9a-f]{16})-[0-9a-f]{40}\.cache")


def cache_dir() -> Path | None:
    """The directory for cache files, or None when caching is turned off."""
    configured = os.environ.get("RPCNET_CACHE_DIR")
    if configured is not None:
        return Path(configured) if configured else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if base.startswith("~"):  # no home directory to expand
        return None
    return Path(base) / "rpcnet"


def cache_path(grammar: str, options: dict[str, Any]) -> Path | None:
    """The cache file for `grammar` built with `options` (None when caching is off)."""
    directory = cache_dir()
    if directory is None:
        return None
    key = "\0".join(
        [grammar, lark.__version__, "{}.{}".format(*sys.version_info[:2])]
        + [f"{name}={options.get(name)!r}" for name in _HASHED_OPTIONS]
    )
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return directory / f"lark-{digest}.pickle"


def _private(info: os.stat_result) -> bool:
    """Whether the directory `info` describes is ours alone (on POSIX: owned by us, not
    group/world writable)."""
    if not stat.S_ISDIR(info.st_mode):
        return False
    if hasattr(os, "getuid"):
        return info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    return True


def _usable(directory: Path) -> bool:
    """Create `directory` (private) if needed; whether cache files may be kept there."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return _private(directory.stat())
    except OSError:
        return False


def load_lark(grammar: str, transformer: Any = None, **options: Any) -> lark.Lark:
    """A Lark LALR parser for `grammar`, from the cache when a valid entry exists."""
    path = cache_path(grammar, options)
    if path is None or not _usable(path.parent):
        return lark.Lark(grammar, transformer=transformer, **options)
    missing = not path.exists()
    # Lark checks the grammar's hash stored in the file, rebuilds when the file is missing,
    # truncated or unreadable, and ignores a failed write (both silently).
    parser = lark.Lark(grammar, transformer=transformer, cache=str(path), **options)
    if missing and path.exists():  # a new entry: drop old versions' tables
        prune(path.parent, _LARK_ENTRY, path.stem.removeprefix("lark-"))
    return parser


def prune(directory: Path, entry: re.Pattern[str], current: str, keep: int = KEEP) -> int:
    """Remove the cache files in `directory` whose names match `entry` and whose version (the
    pattern's ``version`` group) is neither `current` nor among the `keep` - 1 most recently
    written others; return how many were removed.

    Only regular files directly in `directory` are considered, each removed by name relative to
    the opened directory (a symlink is never followed, nothing outside is touched), and only
    when that directory (which may itself be reached through a symlink) is private. A file
    another process removes meanwhile is skipped; any other error stops pruning silently.
    """
    by_fd = os.scandir in os.supports_fd and os.unlink in os.supports_dir_fd
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)) if by_fd else -1
    except OSError:
        return 0
    try:
        if not _private(os.fstat(fd) if by_fd else directory.stat()):
            return 0
        versions = _versions(fd if by_fd else directory, entry)
        versions.pop(current, None)
        stale = sorted(versions.values(), key=lambda v: v[0], reverse=True)[max(keep - 1, 0) :]
        removed = 0
        for _, names in stale:
            for name in names:
                try:
                    if by_fd:
                        os.unlink(name, dir_fd=fd)
                    else:
                        (directory / name).unlink()
                    removed += 1
                except FileNotFoundError:  # another process got there first
                    continue
        return removed
    except OSError:
        return 0
    finally:
        if by_fd:
            os.close(fd)


def _versions(directory: int | Path, entry: re.Pattern[str]) -> dict[str, tuple[int, list[str]]]:
    """The entries in `directory` grouped by version: (newest write in ns, file names)."""
    found: dict[str, tuple[int, list[str]]] = {}
    with os.scandir(directory) as listing:
        for item in listing:
            match = entry.fullmatch(item.name)
            if match is None:
                continue
            try:
                info = item.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            newest, names = found.get(match["version"], (0, []))
            found[match["version"]] = (max(newest, info.st_mtime_ns), [*names, item.name])
    return found


@functools.cache
def _template_cache_class() -> Callable[[str, str], jinja2.FileSystemBytecodeCache]:
    import jinja2
    import jinja2.bccache

    class TemplateCache(jinja2.FileSystemBytecodeCache):
        """Jinja2's file cache of compiled templates that never fails a render: an unreadable
        entry is recompiled, an unwritable directory is ignored. The first entry it writes
        prunes other keys' entries."""

        def __init__(self, directory: str, version: str) -> None:
            super().__init__(directory, f"jinja2-{version}-%s.cache")
            self.version = version
            self.pruned = False

        def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            try:
                super().load_bytecode(bucket)
            except Exception:  # truncated or foreign file: compile afresh
                bucket.reset()

        def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            try:
                super().dump_bytecode(bucket)
            except OSError:
                return
            if not self.pruned:
                self.pruned = True
                prune(Path(self.directory), _TEMPLATE_ENTRY, self.version)

    return TemplateCache


def template_cache(settings: str) -> jinja2.BytecodeCache | None:
    """The compiled-template cache for an environment described by `settings` (its options,
    which change the compiled code), or None when caching is off or impossible."""
    directory = cache_dir()
    if directory is None or not _usable(directory):
        return None
    import jinja2

    key = hashlib.sha256(f"{jinja2.__version__}\0{settings}".encode()).hexdigest()[:16]
    return _template_cache_class()(str(directory), key)
