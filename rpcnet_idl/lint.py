"""``rpcnet-gen lint``: run the selected lint rules over the root schemas of a loaded program.

Rules are registered in `lint_rules` (names, enums, comments, deprecation) and
`lint_rules_policy` (retry, hedge and timeout sanity). Only the files named on the command line
are linted, not the files they import.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import lint_rules_policy  # noqa: F401  (registers the policy rules)
from .diagnostics import Diagnostic
from .lint_config import LintConfig
from .lint_rules import RULES, LintRule
from .loader import Program
from .report import Finding

__all__ = ["RULES", "LintRule", "lint", "rule_table"]

_SAME_AS_CHECKER = {"RETRY_NON_IDEMPOTENT_AFTER_DISPATCH": "retry-after-dispatch"}
"""Lint rules whose finding the checker may already report (then the lint one is dropped)."""


def rule_table() -> dict[str, tuple[str, bool]]:
    """Rule id -> (category, enabled by default), the view `LintConfig` works on."""
    return {rule_id: (r.category, r.default) for rule_id, r in RULES.items()}


def lint(
    program: Program,
    config: LintConfig | None = None,
    checker_diagnostics: Sequence[Diagnostic] = (),
) -> list[Finding]:
    """Every finding of the rules `config` selects, in file, line and column order.

    `checker_diagnostics` are the loader's; a lint finding the checker already made is dropped.
    """
    config = config or LintConfig()
    table = rule_table()
    config.validate(table)
    selected = config.selected(table)
    already = {(d.code, d.path, d.span.line, d.span.column) for d in checker_diagnostics}
    findings: list[Finding] = []
    for schema in program.roots:
        active = selected - config.ignored(schema.path, table)
        for rule_id in sorted(active):
            rule = RULES[rule_id]
            for hit in rule.check(program, schema):
                twin = _SAME_AS_CHECKER.get(rule_id)
                if (twin, schema.path, hit.span.line, hit.span.column) in already:
                    continue
                findings.append(
                    Finding(
                        path=schema.path,
                        span=hit.span,
                        code=rule_id,
                        message=hit.message,
                        severity=rule.severity,
                        hint=hit.hint,
                        source_line=program.source_line(schema, hit.span.line),
                        category=rule.category,
                    )
                )
    order = {schema.path: index for index, schema in enumerate(program.roots)}
    findings.sort(key=lambda f: (order[f.path], f.span.line, f.span.column, f.code))
    return findings
