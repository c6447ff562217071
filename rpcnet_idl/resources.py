"""Find the grammar and the templates, in a source checkout and in an installed wheel.

In a checkout they live at the top level (``grammars/``, ``templates/``); a wheel carries them
inside the package as ``rpcnet_idl/grammars`` and ``rpcnet_idl/templates``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["read_text", "resource_dir", "template_dir"]

_PACKAGE_DIR = Path(__file__).resolve().parent


def resource_dir(kind: str) -> Path:
    """The directory of `kind` (``"grammars"`` or ``"templates"``); FileNotFoundError if absent."""
    for candidate in (_PACKAGE_DIR / kind, _PACKAGE_DIR.parent / kind):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"rpcnet_idl: no {kind!r} directory next to {_PACKAGE_DIR}")


def read_text(kind: str, name: str) -> str:
    """The text of resource `name` of `kind`, such as ``read_text("grammars", "rpcnet.lark")``."""
    return (resource_dir(kind) / name).read_text(encoding="utf-8")


def template_dir() -> Path:
    """The directory holding the ``*.py.j2`` code generator templates."""
    return resource_dir("templates")
