"""The ``rpcnet`` command: operator tools for the runtime.

Each subcommand lives in its own module, which exposes ``register(subparsers)``: it adds its
parser(s) with ``set_defaults(handler=...)``, where the handler takes the parsed arguments and
returns an exit status. To add a command (say ``rpcnet cluster status``), write such a module and
name it in `COMMAND_MODULES`. Handlers report expected failures by raising `CommandError` (or an
`OSError`/`ValueError` with a clear message): `main` prints ``rpcnet: error: ...`` and exits 1,
without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

__all__ = ["COMMAND_MODULES", "CommandError", "build_parser", "main"]

#: Modules whose ``register(subparsers)`` adds subcommands, in the order `--help` lists them.
COMMAND_MODULES: tuple[str, ...] = ("rpcnet_runtime.cli",)

Handler = Callable[[argparse.Namespace], int]


class CommandError(Exception):
    """An expected failure of a command; its message is shown to the user as is."""


# --------------------------------------------------------------------------------------------
# rpcnet certs DIR


def register(subparsers: Any) -> None:
    """Add this module's subcommands (``certs``) to `subparsers`."""
    parser = subparsers.add_parser(
        "certs",
        help="write a development CA and server/client certificates",
        description=(
            "Write a development CA (ca.pem, ca.key), a server certificate for local host names "
            "(server.pem, server.key) and a client certificate for mutual TLS (client.pem, "
            "client.key) into DIR, which is created if missing. For development only."
        ),
    )
    parser.add_argument("directory", metavar="DIR", help="directory to write the files into")
    parser.add_argument(
        "--host",
        dest="hosts",
        action="append",
        metavar="NAME",
        help="server host name or IP address (repeatable; default: localhost 127.0.0.1 ::1)",
    )
    parser.add_argument(
        "--client-name",
        default="rpcnet-dev-client",
        help="common name of the client certificate (default: %(default)s)",
    )
    parser.add_argument(
        "--days", type=int, default=365, help="validity in days (default: %(default)s)"
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing files in DIR")
    parser.set_defaults(handler=_run_certs)
    _register_cluster(subparsers)


def _run_certs(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from .certs import CertificateFilesExist, write_dev_certs

    stream = out if out is not None else sys.stdout
    hosts: tuple[str, ...] = tuple(args.hosts) if args.hosts else ("localhost", "127.0.0.1", "::1")
    try:
        written = write_dev_certs(
            args.directory,
            hosts=hosts,
            client_name=args.client_name,
            days=args.days,
            overwrite=args.force,
        )
    except CertificateFilesExist as exc:
        raise CommandError(
            f"refusing to overwrite existing files: {', '.join(exc.paths)} "
            "(use --force to replace them)"
        ) from None
    rows = [
        ("CA certificate", written.ca_cert, ""),
        ("CA key", written.ca_key, "keep private"),
        ("server certificate", written.server_cert, ", ".join(hosts)),
        ("server key", written.server_key, ""),
        ("client certificate", written.client_cert, f"CN={args.client_name}"),
        ("client key", written.client_key, ""),
    ]
    print(f"Wrote a development CA and certificates (valid {args.days} days):", file=stream)
    for label, path, note in rows:
        suffix = f"  ({note})" if note else ""
        print(f"  {label:<19} {path}{suffix}", file=stream)
    print("Use them with:", file=stream)
    print(
        f"  ServerTLS(cert={written.server_cert!r}, key={written.server_key!r}, "
        f"client_ca={written.ca_cert!r})",
        file=stream,
    )
    print(
        f"  ClientTLS(ca={written.ca_cert!r}, cert={written.client_cert!r}, "
        f"key={written.client_key!r})",
        file=stream,
    )
    return 0


# --------------------------------------------------------------------------------------------
# rpcnet cluster status --seed HOST:PORT


def _register_cluster(subparsers: Any) -> None:
    cluster = subparsers.add_parser(
        "cluster", help="inspect a cluster", description="Inspect an rpcnet cluster."
    )
    commands = cluster.add_subparsers(dest="cluster_command", metavar="COMMAND", required=True)
    status = commands.add_parser(
        "status",
        help="list the members a node knows, with state, phi and health",
        description=(
            "Ask one node (the seed) for its view of the cluster: each member's address, tags, "
            "state and phi, plus calls in flight, breaker state and health when the node "
            "routes calls. Certificate verification is always on."
        ),
    )
    status.add_argument("--seed", required=True, metavar="HOST:PORT", help="a node to ask")
    status.add_argument(
        "--format", choices=("table", "json"), default="table", help="output (default: table)"
    )
    status.add_argument("--ca", required=True, help="CA certificate (PEM) to verify the node")
    status.add_argument("--cert", help="client certificate (PEM), for mutual TLS")
    status.add_argument("--key", help="client key (PEM), for mutual TLS")
    status.add_argument("--server-name", help="name to verify (default: the seed's host)")
    status.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait (default: %(default)s)"
    )
    status.set_defaults(handler=_run_cluster_status)


def _run_cluster_status(args: argparse.Namespace, out: TextIO | None = None) -> int:
    import asyncio

    from .cluster.admin import fetch_status, format_json, format_table
    from .errors import RpcError
    from .tls import ClientTLS

    stream = out if out is not None else sys.stdout
    if (args.cert is None) != (args.key is None):
        raise CommandError("--cert and --key go together")
    if args.timeout <= 0:
        raise CommandError("--timeout must be > 0")
    tls = ClientTLS(ca=args.ca, cert=args.cert, key=args.key, server_name=args.server_name)
    try:
        status = asyncio.run(fetch_status(args.seed, tls=tls, timeout=args.timeout))
    except RpcError as exc:
        raise CommandError(f"cannot get the status from {args.seed}: {exc}") from None
    print(format_json(status) if args.format == "json" else format_table(status), file=stream)
    return 0


# --------------------------------------------------------------------------------------------
# Entry point


def build_parser() -> argparse.ArgumentParser:
    """The ``rpcnet`` parser with every subcommand of `COMMAND_MODULES` registered."""
    parser = argparse.ArgumentParser(
        prog="rpcnet", description="Operator tools for the rpcnet runtime."
    )
    parser.add_argument("--version", action="version", version=f"rpcnet {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``rpcnet`` with `argv` (default: the process arguments); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (CommandError, OSError, ValueError) as exc:
        print(f"rpcnet {args.command}: error: {_describe(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _version() -> str:
    try:
        return importlib.metadata.version("rpcnet")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
