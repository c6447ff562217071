"""The errors a caller sees.

`RpcError` is the one expected, wire-transmittable failure: it carries a `Status`, a message and
the trailer's metadata. Schema errors (``error Overloaded { ... }`` in a `.rpc` file) are generated
subclasses of `SchemaError`, which is an `RpcError` whose fields travel in the trailer and which is
raised again in the caller as the same class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .status import Status

__all__ = ["RpcError", "SchemaError", "WireDecodeError"]


class RpcError(Exception):
    """A call failed with `status`; `message` is safe to show to the caller."""

    def __init__(
        self,
        status: Status,
        message: str = "",
        *,
        metadata: Mapping[str, str] | None = None,
        retry_after_seconds: float | None = None,
        not_processed: bool = False,
    ) -> None:
        super().__init__(status, message)
        self.status = Status(status)
        self.message = message
        self.metadata: Mapping[str, str] = dict(metadata or {})
        #: Server pushback: seconds the caller should wait before trying again, if any.
        self.retry_after_seconds = retry_after_seconds
        #: True when the server guarantees no handler ran for this attempt (shed, draining).
        self.not_processed = not_processed

    def __str__(self) -> str:
        return f"{self.status.name}: {self.message}" if self.message else self.status.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status.name}, {self.message!r})"


class SchemaError(RpcError):
    """Base of the generated error classes of a schema.

    A generated subclass sets `error_name` (the fully qualified schema name, such as
    ``acme.compute.v1.Overloaded``) and `default_status`, takes its fields as keyword-only
    arguments (setting them before calling ``super().__init__``), and implements
    `to_wire`/`from_wire` for its fields exactly as a message does. A schema error with a
    ``duration retry_after`` field overrides `pushback_seconds` so that the field becomes the
    server's pushback.
    """

    error_name: ClassVar[str] = ""
    default_status: ClassVar[Status] = Status.UNKNOWN

    def __init__(self, message: str = "", *, metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(
            self.default_status,
            message or type(self).__name__,
            metadata=metadata,
            retry_after_seconds=self.pushback_seconds(),
        )

    def pushback_seconds(self) -> float | None:
        """Seconds the caller should wait before a retry; None when the error says nothing."""
        return None

    def to_wire(self) -> dict[int, Any]:
        raise NotImplementedError  # pragma: no cover - generated subclasses implement it

    @classmethod
    def from_wire(cls, data: Any) -> SchemaError:
        raise NotImplementedError  # pragma: no cover - generated subclasses implement it


class WireDecodeError(ValueError):
    """Bytes from the peer did not decode into the expected message type.

    Raised by generated `from_wire` code; `path` names the offending field (``Task.tags``).
    """

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
