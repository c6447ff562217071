"""Configuration validation and derived settings."""

from __future__ import annotations

import pytest

from rpcnet_runtime.client_dial import split_address
from rpcnet_runtime.config import LOOPBACK_DATAGRAM_SIZE, ClientConfig, ServerConfig
from rpcnet_runtime.protocol import is_loopback


def test_defaults_are_safe() -> None:
    server, client = ServerConfig(), ClientConfig()
    assert server.max_frame_size == client.max_frame_size == 4 * 1024 * 1024
    assert client.keepalive_interval is not None
    assert client.keepalive_interval < client.idle_timeout <= 10.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_frame_size": 0},
        {"idle_timeout": -1},
        {"receive_window": 0},
        {"max_datagram_size": 1000},
        {"max_datagram_size": 65_000},
        {"socket_buffer_size": 0},
        {"keepalive_interval": 10.0, "idle_timeout": 5.0},
        {"connect_timeout": 0},
        {"max_header_size": 0},
    ],
)
def test_bad_client_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ClientConfig(**kwargs)  # type: ignore[arg-type]


def test_bad_server_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_concurrent_streams"):
        ServerConfig(max_concurrent_streams=0)
    with pytest.raises(ValueError, match="header_timeout"):
        ServerConfig(header_timeout=0)
    assert ServerConfig(header_timeout=None).header_timeout is None  # no limit


@pytest.mark.parametrize(
    ("address", "expected"),
    [("localhost:4433", ("localhost", 4433)), ("[::1]:7001", ("::1", 7001))],
)
def test_addresses_split_into_host_and_port(address: str, expected: tuple[str, int]) -> None:
    assert split_address(address) == expected


@pytest.mark.parametrize("address", ["localhost", "localhost:", "localhost:http", ""])
def test_an_address_without_a_port_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        split_address(address)


def test_datagram_size_follows_the_path() -> None:
    assert ClientConfig().datagram_size(loopback=True) == LOOPBACK_DATAGRAM_SIZE
    assert ClientConfig().datagram_size(loopback=False) == 1200
    assert ClientConfig(max_datagram_size=1400).datagram_size(loopback=True) == 1400


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("10.0.0.1", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected
