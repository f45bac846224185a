"""The end-to-end fixture: the rig of tests.support.e2e started once per module on the suite's Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.e2e import Processes, tls_processes
from tests.support.redis import flush


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Processes]:
    # The suite's database, like every other module's: no other test runs while this module's processes do.
    flush(redis_url)
    procs = tls_processes(tmp_path_factory.mktemp("e2e"), redis_url)
    try:
        procs.start_simulator()
        procs.start_gateway()
        yield procs
    finally:
        procs.stop()
        flush(redis_url)
