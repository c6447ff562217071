from __future__ import annotations

from pathlib import Path

import pytest

from rpcnet_runtime.certs import DevCerts, write_dev_certs


@pytest.fixture(scope="session")
def dev_certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    directory: Path = tmp_path_factory.mktemp("certs")
    return write_dev_certs(directory)
