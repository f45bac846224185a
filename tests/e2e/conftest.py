"""The end-to-end fixture: the rig of tests.support.e2e started once per module on the suite's Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.e2e import Processes, running, tls_processes
from tests.support.redis import flush


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Processes]:
    # The suite's database, like every other module's: no other test runs while this module's processes do.
    procs = tls_processes(tmp_path_factory.mktemp("e2e"), redis_url)
    with running(procs, lambda: flush(redis_url)) as started:
        yield started
