"""The end-to-end fixture: the rig of tests.support.e2e started once per module on the suite's Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trustme

from tests.support.e2e import Processes
from tests.support.loopback import free_port
from tests.support.redis import flush


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Processes]:
    tmp = tmp_path_factory.mktemp("e2e")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp / "server.pem"))
    cert.private_key_pem.write_to_path(str(tmp / "server.key"))
    # The suite's database, like every other module's: no other test runs while this module's processes do.
    flush(redis_url)
    procs = Processes(tmp=tmp, ca=tmp / "ca.pem", redis_url=redis_url, sim_port=free_port(), gw_port=free_port())
    try:
        procs.start_simulator()
        procs.start_gateway()
        yield procs
    finally:
        procs.stop()
        flush(redis_url)
