"""Call policies: pure deciders (time passed in) and the one async executor that acts on them.

See ``docs/policies.md`` for the rules and how the channel and the server use these pieces.
"""

from .backoff import backoff_bound, backoff_delays
from .breaker import (
    BreakerConfig,
    BreakerInput,
    BreakerState,
    BreakerStateError,
    CircuitBreaker,
)
from .channel_policy import ChannelPolicy
from .counters import PolicyCounters
from .deadline import attempt_deadline, call_deadline, earliest, inherited_deadline, remaining
from .dedupe import (
    Claim,
    ClaimKind,
    IdempotencyStore,
    InMemoryIdempotencyStore,
    request_fingerprint,
)
from .executor import (
    AttemptFn,
    AttemptSpec,
    PolicyExecutor,
    StreamAttemptFn,
    choose_idempotency_key,
)
from .hedging import HedgePlan, HedgeVerdict
from .retry import GiveUpReason, RetryDecision, decide_retry, is_retryable
from .shedding import Admission, AdmissionDecision, AdmissionGate, LoadShedder
from .throttle import RetryThrottle

__all__ = [
    "Admission",
    "AdmissionDecision",
    "AdmissionGate",
    "AttemptFn",
    "AttemptSpec",
    "BreakerConfig",
    "BreakerInput",
    "BreakerState",
    "BreakerStateError",
    "ChannelPolicy",
    "CircuitBreaker",
    "Claim",
    "ClaimKind",
    "GiveUpReason",
    "HedgePlan",
    "HedgeVerdict",
    "IdempotencyStore",
    "InMemoryIdempotencyStore",
    "LoadShedder",
    "PolicyCounters",
    "PolicyExecutor",
    "RetryDecision",
    "RetryThrottle",
    "StreamAttemptFn",
    "attempt_deadline",
    "backoff_bound",
    "backoff_delays",
    "call_deadline",
    "choose_idempotency_key",
    "decide_retry",
    "earliest",
    "inherited_deadline",
    "is_retryable",
    "remaining",
    "request_fingerprint",
]
