"""A tiny in-memory `Channel` for tests: calls generated clients against skeleton subclasses.

Every request, response and schema error goes through ``to_wire -> pack -> unpack ->
from_wire``, as on the real wire, so the tests exercise the generated codecs. A method the
skeleton does not override answers UNIMPLEMENTED (the skeleton's own default); a schema error
the method ``throws`` arrives as the same class; anything else becomes INTERNAL.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from rpcnet_runtime import (
    CallContext,
    CallOptions,
    MethodDescriptor,
    RpcError,
    SchemaError,
    Status,
)
from rpcnet_runtime.codec import pack, unpack

__all__ = ["InMemoryChannel", "generate_files", "imported"]


def generate_files(schema: str | Path, cwd: Path | None = None, **load_args: Any) -> dict[str, str]:
    """Generate `schema` (loaded relative to `cwd`, so headers name it as given)."""
    from rpcnet_idl.codegen import generate
    from rpcnet_idl.loader import load_checked

    with contextlib.chdir(cwd or Path.cwd()):
        return generate(load_checked([schema], **load_args))


@contextlib.contextmanager
def imported(files: dict[str, str], root: Path, package: str) -> Iterator[dict[str, ModuleType]]:
    """Write `files` as package `package` under `root` and import every module of it."""
    target = root / package
    target.mkdir(parents=True)
    for name, text in files.items():
        (target / name).write_text(text, encoding="utf-8")
    sys.path.insert(0, str(root))
    try:
        modules = {
            name[:-3]: importlib.import_module(f"{package}.{name[:-3]}")
            for name in sorted(files)
            if name != "__init__.py"
        }
        yield modules
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[name]


def _over_wire(message: Any, cls: Any) -> Any:
    return cls.from_wire(unpack(pack(message.to_wire())))


class InMemoryChannel:
    """Serves calls with `services` (instances of generated ``...Base`` subclasses)."""

    def __init__(self, *services: Any, max_items: int = 10_000) -> None:
        self._services = {type(s).__rpc_service__.name: s for s in services}
        self._max_items = max_items
        self.contexts: list[CallContext] = []
        """The context of every call served, for assertions."""

    def _handler(self, method: MethodDescriptor[Any, Any], options: CallOptions) -> Any:
        service = self._services.get(method.service)
        if service is None:
            raise RpcError(Status.UNIMPLEMENTED, f"no service {method.service}")
        key = options.idempotency_key
        if key is None and method.policy.idempotent:
            key = uuid.uuid4().hex
        ctx = CallContext(
            method=method.path,
            clock=time.monotonic,
            deadline=None if options.timeout is None else time.monotonic() + options.timeout,
            metadata=options.metadata,
            idempotency_key=key,
            peer="memory:0",
        )
        self.contexts.append(ctx)
        return getattr(service, method.py_name), ctx

    @staticmethod
    def _translate(method: MethodDescriptor[Any, Any], error: Exception) -> RpcError:
        if isinstance(error, SchemaError) and type(error) in method.errors:
            data = unpack(pack(error.to_wire()))
            return type(error).from_wire(data)
        if isinstance(error, RpcError):
            return RpcError(error.status, error.message)
        return RpcError(Status.INTERNAL, "internal error")

    async def _requests(
        self, method: MethodDescriptor[Any, Any], requests: AsyncIterable[Any]
    ) -> AsyncIterator[Any]:
        count = 0
        async for request in requests:
            count += 1
            if count > self._max_items:
                raise RpcError(Status.RESOURCE_EXHAUSTED, "too many messages")
            yield _over_wire(request, method.request_type)

    async def unary_unary(
        self, method: MethodDescriptor[Any, Any], request: Any, options: CallOptions
    ) -> Any:
        handler, ctx = self._handler(method, options)
        try:
            response = await handler(_over_wire(request, method.request_type), ctx)
        except Exception as error:
            raise self._translate(method, error) from None
        return _over_wire(response, method.response_type)

    async def unary_stream(
        self, method: MethodDescriptor[Any, Any], request: Any, options: CallOptions
    ) -> AsyncIterator[Any]:
        handler, ctx = self._handler(method, options)
        try:
            count = 0
            async for response in handler(_over_wire(request, method.request_type), ctx):
                count += 1
                if count > self._max_items:
                    raise RpcError(Status.RESOURCE_EXHAUSTED, "too many messages")
                yield _over_wire(response, method.response_type)
        except Exception as error:
            raise self._translate(method, error) from None

    async def stream_unary(
        self, method: MethodDescriptor[Any, Any], requests: AsyncIterable[Any], options: CallOptions
    ) -> Any:
        handler, ctx = self._handler(method, options)
        try:
            response = await handler(self._requests(method, requests), ctx)
        except Exception as error:
            raise self._translate(method, error) from None
        return _over_wire(response, method.response_type)

    async def stream_stream(
        self, method: MethodDescriptor[Any, Any], requests: AsyncIterable[Any], options: CallOptions
    ) -> AsyncIterator[Any]:
        handler, ctx = self._handler(method, options)
        try:
            count = 0
            async for response in handler(self._requests(method, requests), ctx):
                count += 1
                if count > self._max_items:
                    raise RpcError(Status.RESOURCE_EXHAUSTED, "too many messages")
                yield _over_wire(response, method.response_type)
        except Exception as error:
            raise self._translate(method, error) from None

    async def close(self) -> None:
        self._services.clear()
