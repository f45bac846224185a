"""The real ``fal_client`` through a gateway process whose state is in a three-master Redis Cluster
(``GATEWAY_REDIS_CLUSTER=true``, the suite's cluster of tests.support.redis_cluster)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.support.e2e import Processes, running, tls_processes
from tests.support.redis_cluster import ClusterRedis

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def on_cluster(tmp_path_factory: pytest.TempPathFactory, cluster_server: ClusterRedis) -> Iterator[Processes]:
    procs = tls_processes(
        tmp_path_factory.mktemp("e2e-cluster"), cluster_server.url, extra_env={"GATEWAY_REDIS_CLUSTER": "true"}
    )
    with running(procs, cluster_server.flush) as started:
        yield started


def test_submit_status_result_and_a_cached_repeat_on_a_cluster(
    on_cluster: Processes, cluster_server: ClusterRedis
) -> None:
    key = on_cluster.new_key("alpha")
    on_cluster.sim_fault(op="status", kind="slow", delay_seconds=1.0, times=1)  # see test_fal_client.py

    seen = on_cluster.fal_client("submit_status_result", key)

    assert seen["first_status"] == "Queued"
    assert seen["final_status"] == "Completed"
    assert seen["result"]["seed"] == 11
    assert seen["result_by_id"] == seen["result"]
    upstream = len(on_cluster.sim_stats()["requests"])
    assert upstream == 1

    repeat = on_cluster.fal_client("submit_status_result", key)  # the same seeded input: from the cache

    assert repeat["final_status"] == "Completed"
    assert repeat["result"] == seen["result"]
    assert repeat["request_id"] != seen["request_id"]
    assert len(on_cluster.sim_stats()["requests"]) == upstream, "the repeat never reached fal"
    holding = [port for port in cluster_server.ports if redis.Redis(port=port).dbsize()]
    assert len(holding) > 1, "the gateway's keys are spread over the masters"
    with redis.RedisCluster(host="127.0.0.1", port=cluster_server.ports[0]) as cluster:
        # The gateway runs the default 8 shards: its workers recorded the count, and the one-key schedules of a
        # single Redis were never written (the shards themselves are emptied as the jobs finish).
        assert cluster.smembers("gw:v1:shards") == {b"8"}
        assert cluster.exists("gw:v1:tracker:due", "gw:v1:webhook:due") == 0
