"""The breaking-change rules: stable ids, categories and what `--level` fails on.

Categories, from the most to the least severe:

- ``wire``: a deployed peer built from the old schema can no longer talk to one built from the
  new (or the reverse), or data written by one is misread by the other.
- ``source``: the wire still works, but Python code written against the old generated module
  no longer imports, type-checks or behaves the same against the new one.
- ``policy``: a method's timeout, retry, hedge or idempotency-key policy became stricter, which
  changes how deployed calls fail but not whether they decode.

``--level wire`` fails on wire findings only, ``--level source`` (the default) on wire and source
findings, ``--level policy`` on every finding. Findings that do not fail the run are still
reported, as warnings.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BREAKING_RULES", "CATEGORIES", "LEVELS", "BreakingRule", "fails_at"]

CATEGORIES = ("wire", "source", "policy")
LEVELS = CATEGORIES


@dataclass(frozen=True, slots=True)
class BreakingRule:
    id: str
    category: str
    summary: str


def _rules(*rows: tuple[str, str, str]) -> dict[str, BreakingRule]:
    return {
        rule_id: BreakingRule(rule_id, category, summary) for rule_id, category, summary in rows
    }


BREAKING_RULES = _rules(
    ("PACKAGE_SAME", "wire", "A schema file keeps its package (it is part of every method path)."),
    ("MESSAGE_NO_DELETE", "source", "A message is not deleted or renamed."),
    ("ENUM_NO_DELETE", "source", "An enum is not deleted or renamed."),
    ("UNION_NO_DELETE", "source", "A union is not deleted or renamed."),
    ("ERROR_NO_DELETE", "wire", "An error is not deleted or renamed (its name is on the wire)."),
    ("SERVICE_NO_DELETE", "wire", "A service is not deleted or renamed."),
    ("TYPE_SAME_KIND", "wire", "A type stays a message, enum, union or error."),
    ("TYPE_SAME_MODULE", "source", "A type stays in its file, so in its generated module."),
    ("FIELD_NO_DELETE", "wire", "A field is not deleted unless its number is reserved."),
    (
        "FIELD_NO_DELETE_RESERVED",
        "source",
        "A field deleted with its number reserved: wire-safe, but its attribute is gone.",
    ),
    ("FIELD_SAME_NUMBER", "wire", "A field keeps its number (a name kept with a new number)."),
    ("FIELD_SAME_NAME", "source", "A field keeps its name (its Python attribute)."),
    ("FIELD_SAME_TYPE", "wire", "A field keeps its type (safe integer and float widening aside)."),
    ("FIELD_SAME_CARDINALITY", "wire", "A field stays singular, a list or a map."),
    ("FIELD_SAME_OPTIONAL", "source", "A scalar or enum field stays optional or not."),
    ("UNION_VARIANT_NO_DELETE", "wire", "A union variant is not deleted (a peer may send it)."),
    ("ENUM_VALUE_NO_DELETE", "wire", "An enum value is not deleted unless its number is reserved."),
    (
        "ENUM_VALUE_NO_DELETE_RESERVED",
        "source",
        "An enum value deleted with its number reserved: wire-safe, but its member is gone.",
    ),
    ("ENUM_VALUE_SAME_NUMBER", "wire", "An enum value keeps its number."),
    ("ENUM_VALUE_SAME_NAME", "source", "An enum value keeps its name (its Python member)."),
    ("RESERVED_NO_DELETE", "wire", "A reserved number or range stays reserved."),
    ("RESERVED_NAME_NO_DELETE", "source", "A reserved name stays reserved."),
    ("ERROR_SAME_STATUS", "wire", "An error keeps the status it travels with (@status)."),
    ("RPC_NO_DELETE", "wire", "A method is not deleted or renamed."),
    ("RPC_SAME_STREAMING", "wire", "A method keeps its request and response streaming."),
    ("RPC_SAME_REQUEST_TYPE", "wire", "A method keeps its request type."),
    ("RPC_SAME_RESPONSE_TYPE", "wire", "A method keeps its response type."),
    ("RPC_SAME_IDEMPOTENCY", "wire", "An @idempotent method stays idempotent."),
    ("RPC_THROWS_NO_DELETE", "wire", "A method keeps every error it throws."),
    ("POLICY_TIMEOUT_SHORTENED", "policy", "A method's @timeout is not shortened."),
    ("POLICY_TIMEOUT_ADDED", "policy", "A method without a @timeout does not gain one."),
    ("POLICY_RETRY_REMOVED", "policy", "A method's @retry is not removed."),
    ("POLICY_RETRY_ATTEMPTS_REDUCED", "policy", "A method's retry attempts are not reduced."),
    ("POLICY_RETRY_ON_NARROWED", "policy", "A method's @retry(on=...) loses no entry."),
    ("POLICY_HEDGE_REMOVED", "policy", "A method's @hedge is not removed."),
    ("POLICY_IDEMPOTENCY_KEY_CHANGED", "policy", "An @idempotent(key=...) keeps its key field."),
)


def fails_at(category: str, level: str) -> bool:
    """Whether a finding of `category` fails a run at `level`."""
    return CATEGORIES.index(category) <= LEVELS.index(level)
