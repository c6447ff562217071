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
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lark

if TYPE_CHECKING:  # Jinja2 is imported only by code generation, not by parsing alone
    import jinja2

__all__ = ["cache_dir", "cache_path", "load_lark", "template_cache"]

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


@functools.cache
def _template_cache_class() -> type[jinja2.FileSystemBytecodeCache]:
    import jinja2
    import jinja2.bccache

    class TemplateCache(jinja2.FileSystemBytecodeCache):
        """Jinja2's file cache of compiled templates that never fails a render: an unreadable
        entry is recompiled, an unwritable directory is ignored."""

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

    return TemplateCache


def template_cache(settings: str) -> jinja2.BytecodeCache | None:
    """The compiled-template cache for an environment described by `settings` (its options,
    which change the compiled code), or None when caching is off or impossible."""
    directory = cache_dir()
    if directory is None or not _usable(directory):
        return None
    import jinja2

    key = hashlib.sha256(f"{jinja2.__version__}\0{settings}".encode()).hexdigest()[:16]
    return _template_cache_class()(str(directory), f"jinja2-{key}-%s.cache")
