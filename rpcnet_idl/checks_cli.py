"""``rpcnet-gen lint`` and ``rpcnet-gen breaking``: the CI checks' command line.

`main` takes the whole argument list, subcommand first (``["lint", "a.rpc"]``). Exit codes:
0 clean; 1 a finding that fails the run, or a schema that does not load; 2 a usage or
environment problem (bad flags or configuration, an unreadable ``--against``, a missing git
ref). Findings go to stdout in the chosen format; a one-line summary goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from .breaking import apply_level, compare
from .breaking_rules import BREAKING_RULES, LEVELS
from .diagnostics import Diagnostic, Severity
from .lint import RULES, lint
from .lint_config import LintConfig, LintConfigError, find_config, load_config
from .loader import load
from .report import FORMATS, format_diagnostics
from .sources import SourceError, open_old

__all__ = ["main"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("schemas", nargs="*", metavar="SCHEMA", help=".rpc files to check")
    parser.add_argument(
        "-I",
        "--include",
        dest="include_dirs",
        action="append",
        default=[],
        metavar="DIR",
        help="also resolve imports against DIR (repeatable)",
    )
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format")
    parser.add_argument("--list-rules", action="store_true", help="list the rules and exit")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rpcnet-gen", description="Schema checks for CI.")
    commands = parser.add_subparsers(dest="command", required=True)
    lint_cmd = commands.add_parser("lint", help="validate and lint schemas")
    _common(lint_cmd)
    lint_cmd.add_argument(
        "--config",
        metavar="PYPROJECT",
        help="read [tool.rpcnet.lint] from this file (default: the nearest pyproject.toml)",
    )
    breaking_cmd = commands.add_parser("breaking", help="find breaking changes against OLD")
    _common(breaking_cmd)
    breaking_cmd.add_argument(
        "--against",
        metavar="OLD",
        help="the old version: a file, a directory holding the same paths, or git:REF",
    )
    breaking_cmd.add_argument(
        "--level",
        choices=LEVELS,
        default="source",
        help="fail on wire findings only, wire and source (default), or every finding",
    )
    return parser


def _emit(diagnostics: Sequence[Diagnostic], fmt: str, out: TextIO) -> None:
    text = format_diagnostics(diagnostics, fmt)
    if text or fmt == "json":
        print(text, file=out)


def _summary(findings: Sequence[Diagnostic], what: str, err: TextIO) -> None:
    errors = sum(1 for f in findings if f.severity is Severity.ERROR)
    warnings = len(findings) - errors
    print(f"{what}: {errors} error(s), {warnings} warning(s)", file=err)


def _list_rules(command: str, fmt: str, out: TextIO) -> int:
    if command == "lint":
        rows = [
            {
                "id": r.id,
                "category": r.category,
                "default": r.default,
                "severity": r.severity.value,
                "summary": r.summary,
            }
            for r in RULES.values()
        ]
    else:
        rows = [
            {"id": r.id, "category": r.category, "summary": r.summary}
            for r in BREAKING_RULES.values()
        ]
    if fmt == "json":
        print(json.dumps({"rules": rows}, indent=2), file=out)
        return 0
    for row in rows:
        default = "" if row.get("default", True) else "  (off by default)"
        print(f"{row['id']:40} {row['category']:12} {row['summary']}{default}", file=out)
    return 0


def _run_lint(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        config_path = Path(args.config) if args.config else find_config(Path.cwd())
        config = load_config(config_path) if config_path is not None else LintConfig()
        result = load(args.schemas, args.include_dirs)
        findings = lint(result.program, config, result.diagnostics) if result.ok else []
    except LintConfigError as exc:
        print(f"rpcnet-gen lint: error: {exc}", file=err)
        return 2
    everything = [*result.diagnostics, *findings]
    _emit(everything, args.format, out)
    if args.format == "text":
        _summary(everything, "lint", err)
    return 1 if findings or not result.ok else 0


def _run_breaking(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if not args.against:
        print("rpcnet-gen breaking: error: --against OLD is required", file=err)
        return 2
    new = load(args.schemas, args.include_dirs)
    if not new.ok:
        _emit(new.diagnostics, args.format, out)
        print("rpcnet-gen breaking: the new schemas do not load", file=err)
        return 1
    try:
        with open_old(args.against, args.schemas, args.include_dirs) as old:
            if old.missing:
                print(f"note: not in {old.description} (new): {', '.join(old.missing)}", file=err)
            previous = load(old.roots, old.include_dirs)
            if not previous.ok:
                shown = [
                    dataclasses.replace(d, path=old.display(d.path)) for d in previous.diagnostics
                ]
                _emit(shown, args.format, out)
                print(
                    f"rpcnet-gen breaking: error: the old version ({old.description}) does not "
                    "load, so there is nothing sound to compare against",
                    file=err,
                )
                return 2
            found = compare(
                previous.program, new.program, key_map=old.key_map, old_display=old.display
            )
    except SourceError as exc:
        print(f"rpcnet-gen breaking: error: {exc}", file=err)
        return 2
    findings = apply_level(found, args.level)
    _emit(findings, args.format, out)
    if args.format == "text":
        _summary(findings, f"breaking against {args.against} (level {args.level})", err)
    return 1 if any(f.severity is Severity.ERROR for f in findings) else 0


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run ``lint`` or ``breaking``; `argv` starts with the subcommand."""
    out = out or sys.stdout
    err = err or sys.stderr
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parser.parse_args(arguments)
    except SystemExit as exc:  # argparse: usage errors and --help
        return int(exc.code or 0) if isinstance(exc.code, int) else 2
    if args.list_rules:
        return _list_rules(args.command, args.format, out)
    if not args.schemas:
        print(f"rpcnet-gen {args.command}: error: give at least one SCHEMA", file=err)
        return 2
    if args.command == "lint":
        return _run_lint(args, out, err)
    return _run_breaking(args, out, err)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
