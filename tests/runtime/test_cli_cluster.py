"""`rpcnet cluster status`: a real two-node cluster on loopback, asked through the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from rpcnet_runtime.certs import DevCerts, write_dev_certs
from rpcnet_runtime.cli import main as rpcnet
from rpcnet_runtime.cluster.admin import (
    ClusterAdminService,
    fetch_status,
    format_json,
    format_table,
)
from rpcnet_runtime.cluster.config import ClusterConfig
from rpcnet_runtime.cluster.membership import Membership
from rpcnet_runtime.cluster.registry import WorkerRegistry
from rpcnet_runtime.server import Server
from rpcnet_runtime.tls import ClientTLS, ServerTLS

pytestmark = pytest.mark.timeout(30)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return write_dev_certs(tmp_path_factory.mktemp("certs"))


async def _node(
    certs: DevCerts, seeds: list[str], tags: dict[str, str]
) -> tuple[Server, Membership]:
    tls = ServerTLS(certs.server_cert, certs.server_key, client_ca=certs.ca)
    server = Server("127.0.0.1", 0, tls=tls)
    await server.start()
    config = ClusterConfig.local(
        seeds=seeds,
        tags=tags,
        tls=ClientTLS(ca=certs.ca, cert=certs.client_cert, key=certs.client_key),
    )
    return server, await Membership.join(server, config)


@pytest.fixture
async def seed(certs: DevCerts) -> AsyncIterator[tuple[Server, WorkerRegistry]]:
    director, members = await _node(certs, [], {"role": "director"})
    worker, worker_members = await _node(certs, [f"127.0.0.1:{director.port}"], {"role": "worker"})
    registry = WorkerRegistry(members)
    director.add_service(ClusterAdminService(members, registry))
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 10
    while len(members.members()) < 2 and loop.time() < give_up:
        await asyncio.sleep(0.02)
    assert len(members.members()) == 2
    try:
        yield director, registry
    finally:
        await registry.aclose()
        for membership in (worker_members, members):
            await membership.close()
        for server in (worker, director):
            await server.stop(grace=0.1)


async def test_status_lists_members_with_health(
    seed: tuple[Server, WorkerRegistry], certs: DevCerts
) -> None:
    director, _ = seed
    tls = ClientTLS(ca=certs.ca, cert=certs.client_cert, key=certs.client_key)
    status = await fetch_status(f"127.0.0.1:{director.port}", tls=tls)
    by_tag = {n.tags["role"]: n for n in status.members}
    assert set(by_tag) == {"director", "worker"}
    assert by_tag["director"].local and not by_tag["worker"].local
    assert status.node_id == by_tag["director"].id
    assert by_tag["worker"].state == "alive" and by_tag["worker"].phi is not None
    assert by_tag["worker"].breaker == "closed" and by_tag["worker"].in_flight == 0
    table = format_table(status).splitlines()
    assert table[0].split() == ["NODE", "ADDRESS", "STATE", "PHI", "IN_FLIGHT", "BREAKER",
                                "HEALTH", "TAGS"]  # fmt: skip
    assert any("role=worker" in line and "alive" in line for line in table[1:])
    assert json.loads(format_json(status))["members"][0]["id"] == status.members[0].id


async def test_cli_prints_json_and_table(
    seed: tuple[Server, WorkerRegistry], certs: DevCerts
) -> None:
    director, _ = seed
    base = [sys.executable, "-m", "rpcnet_runtime.cli", "cluster", "status",
            "--seed", f"127.0.0.1:{director.port}", "--ca", certs.ca,
            "--cert", certs.client_cert, "--key", certs.client_key]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for fmt in ("json", "table"):
        proc = await asyncio.create_subprocess_exec(
            *base, "--format", fmt, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0, err.decode()
        if fmt == "json":
            document = json.loads(out)
            assert {m["tags"]["role"] for m in document["members"]} == {"director", "worker"}
            assert document["has_quorum"] is True
        else:
            assert out.decode().startswith("NODE")


def test_cli_reports_unreachable_seed(certs: DevCerts, capsys: pytest.CaptureFixture[str]) -> None:
    code = rpcnet(["cluster", "status", "--seed", "127.0.0.1:9", "--ca", certs.ca,
                   "--timeout", "0.3"])  # fmt: skip
    assert code == 1
    assert "cannot get the status from 127.0.0.1:9" in capsys.readouterr().err


def test_cli_wants_cert_and_key_together(
    certs: DevCerts, capsys: pytest.CaptureFixture[str]
) -> None:
    code = rpcnet(["cluster", "status", "--seed", "127.0.0.1:9", "--ca", certs.ca,
                   "--cert", certs.client_cert])  # fmt: skip
    assert code == 1 and "--cert and --key go together" in capsys.readouterr().err
    assert rpcnet(["certs", str(Path(certs.ca).parent / "again")]) == 0
