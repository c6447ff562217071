"""Semantic checks over a loaded `Program` (work in progress: rules land incrementally)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .diagnostics import Diagnostic

if TYPE_CHECKING:
    from .loader import Program

__all__ = ["check"]


def check(program: Program) -> list[Diagnostic]:
    """Every problem in `program`, errors and warnings; raises nothing."""
    return []
