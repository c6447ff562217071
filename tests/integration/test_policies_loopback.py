"""Call policies over real QUIC + TLS on loopback, counting handler executions.

The service is generated from ``policy_test.rpc`` into ``policy_gen/gen/``; regenerate with
``rpcnet-gen tests/integration/policy_test.rpc -o tests/integration/policy_gen/gen``.
Handlers follow a per-test script and record every execution (key, attempt, hedge flag).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import timedelta
from types import ModuleType
from typing import Any

import pytest

from rpcnet_runtime import CallContext, RpcError, Status
from rpcnet_runtime.certs import DevCerts
from rpcnet_runtime.client import ChannelPolicy, ClientChannel, connect
from rpcnet_runtime.policies import BreakerConfig
from rpcnet_runtime.server import Server
from rpcnet_runtime.tls import ClientTLS, ServerTLS

pytestmark = pytest.mark.timeout(20)

Script = Callable[[Any, CallContext, int], Coroutine[Any, Any, Any]]
"""A handler's behaviour: (request, ctx, execution number from 1) -> Rep, or raises."""


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    return importlib.import_module("policy_gen.gen.policy_test")


class Recorder:
    """The service: runs each method's script and records what every execution saw."""

    def __init__(self, gen: ModuleType) -> None:
        self.gen = gen
        self.scripts: dict[str, Script] = {}
        self.seen: dict[str, list[CallContext]] = {}
        self.cancelled = asyncio.Event()

    def count(self, method: str) -> int:
        return len(self.seen.get(method, []))

    def reply(self, request: Any, ctx: CallContext) -> Any:
        return self.gen.Rep(
            body=request.body,
            idempotency_key=ctx.idempotency_key or "",
            attempt=ctx.attempt,
            is_hedge=ctx.is_hedge,
        )

    async def run(self, method: str, request: Any, ctx: CallContext) -> Any:
        executions = self.seen.setdefault(method, [])
        executions.append(ctx)
        script = self.scripts.get(method)
        if script is None:
            return self.reply(request, ctx)
        return await script(request, ctx, len(executions))


def make_service(gen: ModuleType, recorder: Recorder) -> Any:
    class Service(gen.PolicyTestBase):  # type: ignore[misc, name-defined]
        async def flaky(self, request: Any, ctx: CallContext) -> Any:
            return await recorder.run("flaky", request, ctx)

        async def keyed(self, request: Any, ctx: CallContext) -> Any:
            return await recorder.run("keyed", request, ctx)

        async def charge(self, request: Any, ctx: CallContext) -> Any:
            return await recorder.run("charge", request, ctx)

        async def hedged(self, request: Any, ctx: CallContext) -> Any:
            return await recorder.run("hedged", request, ctx)

        async def deadlined(self, request: Any, ctx: CallContext) -> Any:
            return await recorder.run("deadlined", request, ctx)

        async def watch(self, request: Any, ctx: CallContext) -> AsyncIterator[Any]:
            # The script returns how many replies to send before failing with UNAVAILABLE
            # (None: send two and end).
            fail_after = await recorder.run("watch", request, ctx)
            for i in range(2):
                if fail_after == i:
                    raise RpcError(Status.UNAVAILABLE, "stream broke")
                yield gen.Rep(body=f"{i}", attempt=ctx.attempt)

    return Service()


@asynccontextmanager
async def serving(
    gen: ModuleType, certs: DevCerts, policy: ChannelPolicy | None = None, **server_args: Any
) -> AsyncIterator[tuple[Recorder, Server, ClientChannel, Any]]:
    recorder = Recorder(gen)
    server = Server(
        "127.0.0.1", 0, tls=ServerTLS(certs.server_cert, certs.server_key), **server_args
    )
    server.add_service(make_service(gen, recorder))
    await server.start()
    try:
        async with connect(
            f"127.0.0.1:{server.port}", tls=ClientTLS(ca=certs.ca), policy=policy
        ) as channel:
            yield recorder, server, channel, gen.PolicyTestClient(channel)
    finally:
        await server.stop(grace=0.5)


def unavailable_until(successful_execution: int) -> Script:
    async def script(request: Any, ctx: CallContext, n: int) -> Any:
        if n < successful_execution:
            raise RpcError(Status.UNAVAILABLE, f"transient failure {n}")
        return None

    return script


def loop_time() -> float:
    return asyncio.get_running_loop().time()


async def test_fails_twice_then_succeeds_runs_three_times_with_one_key(
    gen: ModuleType, certs: DevCerts
) -> None:
    async with serving(gen, certs) as (rec, server, channel, client):
        fail_twice = unavailable_until(3)

        async def script(request: Any, ctx: CallContext, n: int) -> Any:
            await fail_twice(request, ctx, n)
            return rec.reply(request, ctx)

        rec.scripts["flaky"] = script
        reply = await client.flaky(gen.Req(body="x"))
        assert reply.body == "x" and reply.attempt == 3
        seen = rec.seen["flaky"]
        assert [ctx.attempt for ctx in seen] == [1, 2, 3]
        keys = {ctx.idempotency_key for ctx in seen}
        assert len(keys) == 1 and len(next(iter(keys)) or "") == 32  # random 128-bit hex key
        assert channel.counters.snapshot()["retries"] == 2
        # The transient failures abandoned the key; the success was stored once.
        assert server.counters.dedupe_hits == 0


async def test_a_repeated_key_runs_the_handler_once(gen: ModuleType, certs: DevCerts) -> None:
    async with serving(gen, certs) as (rec, server, _channel, client):
        first = await client.keyed(gen.Req(id="order-1", body="a"))
        again = await client.keyed(gen.Req(id="order-1", body="a"))
        assert first == again and first.idempotency_key == "order-1"
        assert rec.count("keyed") == 1
        assert server.counters.snapshot()["dedupe_hits"] == 1
        # The caller's own key wins over the field; the same key reused for another request
        # is refused clearly.
        with pytest.raises(RpcError) as info:
            await client.keyed(gen.Req(id="order-1", body="b"))
        assert info.value.status is Status.FAILED_PRECONDITION
        assert rec.count("keyed") == 1
        other = await client.keyed(gen.Req(id="order-1", body="b"), idempotency_key="k2")
        assert other.idempotency_key == "k2" and rec.count("keyed") == 2


async def test_a_repeat_while_the_first_runs_waits_for_its_result(
    gen: ModuleType, certs: DevCerts
) -> None:
    async with serving(gen, certs) as (rec, server, _channel, client):
        release = asyncio.Event()
        started = asyncio.Event()

        async def script(request: Any, ctx: CallContext, n: int) -> Any:
            started.set()
            await release.wait()
            return rec.reply(request, ctx)

        rec.scripts["keyed"] = script
        first = asyncio.ensure_future(client.keyed(gen.Req(id="k", body="a")))
        await started.wait()
        second = asyncio.ensure_future(client.keyed(gen.Req(id="k", body="a")))
        while server.counters.dedupe_waits == 0:  # bounded by the test timeout
            await asyncio.sleep(0.005)
        release.set()
        assert await first == await second
        assert rec.count("keyed") == 1


async def test_non_idempotent_method_failing_after_dispatch_runs_once(
    gen: ModuleType, certs: DevCerts
) -> None:
    async with serving(gen, certs) as (rec, _server, channel, client):
        rec.scripts["charge"] = unavailable_until(99)
        with pytest.raises(RpcError) as info:
            await client.charge(gen.Req(body="card"))
        assert info.value.status is Status.UNAVAILABLE and not info.value.not_processed
        assert rec.count("charge") == 1
        assert rec.seen["charge"][0].idempotency_key is None
        assert channel.counters.retries == 0


async def test_hedge_answers_in_about_the_delay_and_cancels_the_slow_attempt(
    gen: ModuleType, certs: DevCerts
) -> None:
    async with serving(gen, certs) as (rec, _server, channel, client):
        slow_cancelled = asyncio.Event()

        async def script(request: Any, ctx: CallContext, n: int) -> Any:
            if n == 1:
                try:
                    await asyncio.Event().wait()  # stalls until cancelled
                except asyncio.CancelledError:
                    slow_cancelled.set()
                    raise
            return rec.reply(request, ctx)

        rec.scripts["hedged"] = script
        await client.flaky(gen.Req())  # connect and warm up first
        start = loop_time()
        reply = await client.hedged(gen.Req(body="h"))
        elapsed = loop_time() - start
        assert reply.is_hedge and reply.attempt == 2
        assert 0.1 <= elapsed < 0.1 + 0.3, elapsed
        await asyncio.wait_for(slow_cancelled.wait(), 2.0)
        first, hedge = rec.seen["hedged"]
        assert not first.is_hedge and hedge.is_hedge
        assert first.idempotency_key == hedge.idempotency_key is not None
        assert channel.counters.hedges == 1


@pytest.mark.parametrize("behaviour", ["fails fast", "stalls"])
async def test_a_deadline_with_retries_ends_no_later_than_the_deadline(
    gen: ModuleType, certs: DevCerts, behaviour: str
) -> None:
    policy = ChannelPolicy(breaker_enabled=False, throttle_enabled=False)
    async with serving(gen, certs, policy) as (rec, _server, _channel, client):

        async def script(request: Any, ctx: CallContext, n: int) -> Any:
            if behaviour == "stalls":
                await asyncio.Event().wait()
            raise RpcError(Status.UNAVAILABLE, "down")

        rec.scripts["deadlined"] = script
        await client.flaky(gen.Req())  # connect first: the deadline is for the call alone
        start = loop_time()
        with pytest.raises(RpcError) as info:
            await client.deadlined(gen.Req())
        elapsed = loop_time() - start
        assert elapsed <= 0.4 + 0.05, elapsed
        if behaviour == "stalls":
            assert info.value.status is Status.DEADLINE_EXCEEDED
            assert rec.count("deadlined") == 1
        else:
            assert rec.count("deadlined") >= 2  # it did retry within the deadline


async def test_shed_calls_are_refused_before_dispatch_and_retried_safely(
    gen: ModuleType, certs: DevCerts
) -> None:
    async with serving(gen, certs, max_concurrent_calls=1) as (rec, server, channel, client):
        release = asyncio.Event()
        started = asyncio.Event()

        async def script(request: Any, ctx: CallContext, n: int) -> Any:
            if n == 1:
                started.set()
                await release.wait()
            return rec.reply(request, ctx)

        rec.scripts["charge"] = script
        holder = asyncio.ensure_future(client.charge(gen.Req(body="1")))
        await started.wait()
        second = asyncio.ensure_future(client.charge(gen.Req(body="2")))
        while server.counters.shed == 0:  # bounded by the test timeout
            await asyncio.sleep(0.005)
        release.set()
        assert (await holder).body == "1"
        assert (await second).body == "2"
        # A non-idempotent method was retried because the shed answer proved it never ran;
        # each logical call ran exactly once.
        assert rec.count("charge") == 2
        assert channel.counters.retries >= 1


async def test_shed_answer_carries_not_processed_and_retry_after(
    gen: ModuleType, certs: DevCerts
) -> None:
    policy = ChannelPolicy(retries_enabled=False)
    async with serving(gen, certs, policy, max_concurrent_calls=1) as (rec, _server, _, client):
        release = asyncio.Event()
        started = asyncio.Event()

        async def script(request: Any, ctx: CallContext, n: int) -> Any:
            started.set()
            await release.wait()
            return rec.reply(request, ctx)

        rec.scripts["charge"] = script
        holder = asyncio.ensure_future(client.charge(gen.Req()))
        await started.wait()
        with pytest.raises(RpcError) as info:
            await client.charge(gen.Req())
        release.set()
        await holder
        assert info.value.status is Status.RESOURCE_EXHAUSTED
        assert info.value.not_processed and info.value.retry_after_seconds is not None
        assert rec.count("charge") == 1


async def test_pushback_delays_the_retry(gen: ModuleType, certs: DevCerts) -> None:
    async with serving(gen, certs) as (rec, _server, _channel, client):
        times: list[float] = []

        async def script(request: Any, ctx: CallContext, n: int) -> Any:
            times.append(loop_time())
            if n == 1:
                raise gen.Busy(retry_after=timedelta(milliseconds=300))
            return rec.reply(request, ctx)

        rec.scripts["flaky"] = script
        reply = await client.flaky(gen.Req(body="p"))
        assert reply.attempt == 2
        # The backoff alone would be at most 10 ms; the server asked for 300 ms.
        assert times[1] - times[0] >= 0.3 - 0.01, times


async def test_server_stream_is_retried_only_before_its_first_response(
    gen: ModuleType, certs: DevCerts
) -> None:
    async with serving(gen, certs) as (rec, _server, _channel, client):

        async def before_first(request: Any, ctx: CallContext, n: int) -> Any:
            return 0 if n == 1 else None

        rec.scripts["watch"] = before_first
        replies = [reply async for reply in client.watch(gen.Req())]
        assert [(r.body, r.attempt) for r in replies] == [("0", 2), ("1", 2)]
        assert rec.count("watch") == 2

        async def after_first(request: Any, ctx: CallContext, n: int) -> Any:
            return 1

        rec.scripts["watch"] = after_first
        received = []
        with pytest.raises(RpcError) as info:
            async for reply in client.watch(gen.Req()):
                received.append(reply.body)
        assert info.value.status is Status.UNAVAILABLE and received == ["0"]
        assert rec.count("watch") == 3  # one more execution: no retry after a response


async def test_a_handlers_outgoing_call_inherits_its_deadline(
    gen: ModuleType, certs: DevCerts
) -> None:
    async with serving(gen, certs) as (rec, _server, _channel, client):
        inner_ended: asyncio.Future[float] = asyncio.Future()

        async def stalls(request: Any, ctx: CallContext, n: int) -> Any:
            await asyncio.Event().wait()

        async def calls_out(request: Any, ctx: CallContext, n: int) -> Any:
            try:
                await client.charge(gen.Req())  # no timeout given: the handler's applies
            finally:
                inner_ended.set_result(loop_time())
            return rec.reply(request, ctx)

        rec.scripts["charge"] = stalls
        rec.scripts["keyed"] = calls_out
        await client.flaky(gen.Req())  # connect first
        start = loop_time()
        with pytest.raises(RpcError) as outer:
            await client.keyed(gen.Req(id="x"), timeout=0.3)
        assert outer.value.status is Status.DEADLINE_EXCEEDED
        ended = await asyncio.wait_for(inner_ended, 2.0)
        assert ended - start <= 0.3 + 0.05
        # The inner request carried the outer handler's deadline (Charge has no @timeout).
        inner_deadline = rec.seen["charge"][0].deadline
        outer_deadline = rec.seen["keyed"][0].deadline
        assert inner_deadline is not None and outer_deadline is not None
        assert inner_deadline <= outer_deadline + 0.005


async def test_queued_calls_wait_for_a_slot_instead_of_being_shed(
    gen: ModuleType, certs: DevCerts
) -> None:
    async with serving(gen, certs, max_concurrent_calls=1, max_queued_calls=1) as (
        rec,
        server,
        _channel,
        client,
    ):
        release = asyncio.Event()
        started = asyncio.Event()

        async def script(request: Any, ctx: CallContext, n: int) -> Any:
            if n == 1:
                started.set()
                await release.wait()
            return rec.reply(request, ctx)

        rec.scripts["charge"] = script
        holder = asyncio.ensure_future(client.charge(gen.Req(body="1")))
        await started.wait()
        queued = asyncio.ensure_future(client.charge(gen.Req(body="2")))
        while server.counters.queued == 0:  # bounded by the test timeout
            await asyncio.sleep(0.005)
        assert rec.count("charge") == 1  # the queued call has not run yet
        release.set()
        assert (await holder).body == "1" and (await queued).body == "2"
        assert server.counters.shed == 0 and rec.count("charge") == 2
        assert server.gate is not None and server.gate.shedder.running == 0


async def test_a_call_whose_deadline_passes_in_the_queue_is_not_processed(
    gen: ModuleType, certs: DevCerts
) -> None:
    policy = ChannelPolicy(retries_enabled=False)
    async with serving(gen, certs, policy, max_concurrent_calls=1, max_queued_calls=1) as (
        rec,
        server,
        _channel,
        client,
    ):
        release = asyncio.Event()
        started = asyncio.Event()

        async def script(request: Any, ctx: CallContext, n: int) -> Any:
            started.set()
            await release.wait()
            return rec.reply(request, ctx)

        rec.scripts["charge"] = script
        holder = asyncio.ensure_future(client.charge(gen.Req()))
        await started.wait()
        with pytest.raises(RpcError) as info:
            await client.charge(gen.Req(), timeout=0.1)
        assert info.value.status is Status.DEADLINE_EXCEEDED
        # The server's deadline for the call is later than the caller's by the request's
        # transit time: release the running call only once the queued one has left the queue.
        assert server.gate is not None
        while server.gate.shedder.queued:  # bounded by the test timeout
            await asyncio.sleep(0.005)
        release.set()
        await holder
        assert rec.count("charge") == 1


async def test_an_enabled_breaker_fails_fast_without_sending(
    gen: ModuleType, certs: DevCerts
) -> None:
    breaker = BreakerConfig(failure_threshold=2, failure_rate=None, open_duration=60.0)
    policy = ChannelPolicy(breaker_enabled=True, breaker=breaker)
    async with serving(gen, certs, policy) as (rec, _server, channel, client):
        rec.scripts["charge"] = unavailable_until(99)
        for _ in range(2):
            with pytest.raises(RpcError):
                await client.charge(gen.Req())
        with pytest.raises(RpcError) as info:
            await client.charge(gen.Req())
        assert info.value.status is Status.UNAVAILABLE and info.value.not_processed
        assert rec.count("charge") == 2
        assert channel.counters.breaker_opened == 1
        assert channel.counters.breaker_rejections >= 1
