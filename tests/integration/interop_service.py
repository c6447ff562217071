"""The interop TestService implementation the integration tests serve."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from types import ModuleType
from typing import Any

from rpcnet_runtime import CallContext, RpcError, Status


def make_service(interop: ModuleType) -> Any:
    """An instance of a TestServiceBase subclass built from the generated module."""

    class TestService(interop.TestServiceBase):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            # "Sleeping" handlers wait on `release`; most tests never set it.
            self.release = asyncio.Event()
            self.started = asyncio.Event()
            self.cancelled = asyncio.Event()
            self.contexts: list[CallContext] = []

        def _echo(self, ctx: CallContext) -> None:
            for key, value in ctx.metadata.items():
                if key.startswith("x-echo-"):
                    ctx.response_metadata[key] = value

        def _check_status(self, status: Any) -> None:
            if status is not None and status.code != 0:
                raise RpcError(Status(status.code), status.message)

        def _payload(self, size: int) -> Any:
            return interop.Payload(body=bytes(size))

        async def empty_call(self, request: Any, ctx: CallContext) -> Any:
            self._echo(ctx)
            return interop.Empty()

        async def unary_call(self, request: Any, ctx: CallContext) -> Any:
            self._echo(ctx)
            self.contexts.append(ctx)
            self._check_status(request.response_status)
            if request.raise_overloaded:
                raise interop.Overloaded(reason="busy", retry_after=timedelta(seconds=1.5))
            remaining = ctx.time_remaining()
            return interop.SimpleResponse(
                payload=self._payload(request.response_size),
                peer=ctx.peer if request.fill_peer else "",
                peer_identity=ctx.peer_identity or "",
                time_remaining=None if remaining is None else timedelta(seconds=remaining),
                idempotency_key=ctx.idempotency_key or "",
                attempt=ctx.attempt,
            )

        async def streaming_output_call(self, request: Any, ctx: CallContext) -> AsyncIterator[Any]:
            self._echo(ctx)
            for params in request.response_parameters:
                self.started.set()
                yield interop.StreamingOutputCallResponse(payload=self._payload(params.size))
            self._check_status(request.response_status)

        async def streaming_input_call(self, requests: AsyncIterator[Any], ctx: CallContext) -> Any:
            self.started.set()
            total = 0
            try:
                async for request in requests:
                    total += len(request.payload.body) if request.payload else 0
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
            return interop.StreamingInputCallResponse(aggregated_payload_size=total)

        async def full_duplex_call(
            self, requests: AsyncIterator[Any], ctx: CallContext
        ) -> AsyncIterator[Any]:
            self._echo(ctx)
            try:
                async for request in requests:
                    self._check_status(request.response_status)
                    for params in request.response_parameters:
                        yield interop.StreamingOutputCallResponse(
                            payload=self._payload(params.size)
                        )
                    self.started.set()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise

        async def sleep_call(self, request: Any, ctx: CallContext) -> Any:
            self.contexts.append(ctx)
            self.started.set()
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
            return interop.Empty()

        async def broken_call(self, request: Any, ctx: CallContext) -> Any:
            raise ValueError("secret detail that must not leak")

    return TestService()
