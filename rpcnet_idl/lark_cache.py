"""Build a Lark parser once per grammar, and keep its tables in a per-user cache file.

Building the LALR tables of ``grammars/rpcnet.lark`` takes ~50 ms, loading them ~5 ms. The
cache file lives in the user's cache directory (``$RPCNET_CACHE_DIR``, else
``$XDG_CACHE_HOME/rpcnet``, else ``~/.cache/rpcnet``), never next to the installed package; its
name is a hash of the grammar text, the parser options, Lark's version and Python's version, so
a changed grammar or upgraded Lark never reads stale tables. The file is a pickle, so it is only
read from a directory owned by the current user and writable by no one else. Any problem
(unwritable directory, corrupt or foreign file) falls back silently to building the tables.
Set ``RPCNET_CACHE_DIR`` to an empty string to turn the cache off.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from pathlib import Path
from typing import Any

import lark

__all__ = ["cache_dir", "cache_path", "load_lark"]

_HASHED_OPTIONS = ("parser", "lexer", "propagate_positions", "maybe_placeholders")


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


def _private(directory: Path) -> bool:
    """Whether `directory` is ours alone (on POSIX: owned by us, not group/world writable)."""
    info = directory.stat()
    if not stat.S_ISDIR(info.st_mode):
        return False
    if hasattr(os, "getuid"):
        return info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    return True


def _usable(directory: Path) -> bool:
    """Create `directory` (private) if needed; whether cache files may be kept there."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return _private(directory)
    except OSError:
        return False


def load_lark(grammar: str, transformer: Any = None, **options: Any) -> lark.Lark:
    """A Lark LALR parser for `grammar`, from the cache when a valid entry exists."""
    path = cache_path(grammar, options)
    if path is None or not _usable(path.parent):
        return lark.Lark(grammar, transformer=transformer, **options)
    # Lark checks the grammar's hash stored in the file, rebuilds when the file is missing,
    # truncated or unreadable, and ignores a failed write (both silently).
    return lark.Lark(grammar, transformer=transformer, cache=str(path), **options)
