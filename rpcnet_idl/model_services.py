"""View-models of a module's services: methods, their errors and `MethodPolicy` expressions."""

from __future__ import annotations

from . import ast, naming
from .model_context import ModuleContext
from .model_types import MethodModel, ServiceModel
from .policies import MethodPolicySpec, method_policy
from .wirecode import pystr

__all__ = ["ServiceBuilder"]

_KINDS = {
    (False, False): "UNARY_UNARY",
    (False, True): "UNARY_STREAM",
    (True, False): "STREAM_UNARY",
    (True, True): "STREAM_STREAM",
}


class ServiceBuilder(ModuleContext):
    """Builds the services' view-models."""

    def named(self, t: ast.TypeRef, what: str) -> str:
        if not isinstance(t, ast.NamedType):
            raise self.fail(t.span, "bad-rpc-type", f"an rpc {what} must be a message or union")
        resolved = self.resolve(t)
        if resolved.kind not in ("message", "union"):
            raise self.fail(t.span, "bad-rpc-type", f"an rpc {what} must be a message or union")
        return resolved.ref

    def error_ref(self, fqn: str, span: ast.Span) -> str:
        symbol = self.program.symbols.get(fqn)
        if symbol is None or not isinstance(symbol.decl, ast.Error):
            raise self.fail(span, "unknown-type", f"unknown error {fqn}")
        return self.ref(symbol.schema, naming.type_name(symbol.decl.name))

    def policy(self, spec: MethodPolicySpec, method: ast.Method, request: ast.TypeRef) -> str:
        args: list[str] = []
        if spec.timeout is not None:
            args.append(f"timeout={spec.timeout!r}")
        if spec.attempt_timeout is not None:
            args.append(f"attempt_timeout={spec.attempt_timeout!r}")
        if spec.idempotent:
            args.append("idempotent=True")
        if spec.key_field is not None:
            key = self.key_attribute(request, spec.key_field)
            args.append(f"idempotency_key_field={pystr(key)}")
        if spec.retry is not None:
            r = spec.retry
            retry = [
                f"max_attempts={r.attempts!r}",
                f"initial_backoff={r.initial_backoff!r}",
                f"max_backoff={r.max_backoff!r}",
                f"backoff_multiplier={r.multiplier!r}",
            ]
            if r.on_statuses:
                statuses = ", ".join(f"_rt.Status.{s}" for s in r.on_statuses)
                retry.append(f"retryable_statuses=frozenset({{{statuses}}})")
            if r.on_errors:
                errors = [self.error_ref(e, method.span) for e in r.on_errors]
                tuple_ = f"({errors[0]},)" if len(errors) == 1 else f"({', '.join(errors)})"
                retry.append(f"retryable_errors={tuple_}")
            args.append(f"retry=_rt.RetryPolicy({', '.join(retry)})")
        if spec.hedge is not None:
            h = spec.hedge
            statuses = ", ".join(f"_rt.Status.{s}" for s in h.non_fatal)
            extra = f", non_fatal_statuses=frozenset({{{statuses}}})" if statuses else ""
            hedge = f"max_attempts={h.attempts!r}, delay={h.delay!r}{extra}"
            args.append(f"hedge=_rt.HedgePolicy({hedge})")
        if spec.deprecated is not None:
            args.append(f"deprecated={pystr(spec.deprecated)}")
        return f"_rt.MethodPolicy({', '.join(args)})"

    def key_attribute(self, request: ast.TypeRef, key: str) -> str:
        if isinstance(request, ast.NamedType):
            symbol = self.program.resolve(self.schema, request)
            if symbol is not None and isinstance(symbol.decl, ast.Message):
                return self.field_py_name(symbol.schema, "message", key)
        return key

    def service(self, decl: ast.Service) -> ServiceModel:
        fqn = f"{self.schema.package}.{decl.name}"
        py = naming.type_name(decl.name)
        methods: list[MethodModel] = []
        for m in decl.methods:
            spec = method_policy(self.program, self.schema, decl, m)
            errors = tuple(self.error_ref(self.resolve_fqn(t), t.span) for t in m.throws)
            methods.append(
                MethodModel(
                    name=m.name,
                    py_name=naming.method_name(m.name),
                    const=naming.constant_name(decl.name, m.name),
                    path=f"{fqn}/{m.name}",
                    kind=_KINDS[(m.request_stream, m.response_stream)],
                    client_streams=m.request_stream,
                    server_streams=m.response_stream,
                    request=self.named(m.request, "request"),
                    response=self.named(m.response, "response"),
                    errors=errors,
                    policy=self.policy(spec, m, m.request),
                    doc=m.doc,
                    deprecated=spec.deprecated,
                )
            )
        return ServiceModel(
            decl.name, fqn, naming.constant_name(decl.name), f"{py}Client", f"{py}Base",
            tuple(methods), decl.doc,
        )  # fmt: skip

    def resolve_fqn(self, ref: ast.NamedType) -> str:
        symbol = self.program.resolve(self.schema, ref)
        if symbol is None:
            raise self.fail(ref.span, "unknown-type", f"unknown type {ref.name}")
        return symbol.fqn
