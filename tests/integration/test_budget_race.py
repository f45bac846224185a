"""The overspend race every other gateway loses: a budget that fits exactly N estimated jobs, 20 x N concurrent
submits spread over two app instances sharing one Redis. Exactly N are accepted, and reserved + spent never
exceeds the limit at any sampled instant."""

from __future__ import annotations

import asyncio
import threading
import time

from service import keys
from service.domain.budgets import BudgetPeriod, period_window
from tests.support.admin import key_auth, tenant_key
from tests.support.endpoints import T2V
from tests.support.redis_cluster import MODES, sync_client
from tests.support.replicas import StartReplicas

ESTIMATE = 261_360  # 720p 16:9 5 s with audio
REDIS_MODES = MODES
N = 5


async def test_exactly_n_of_20n_concurrent_submits_fit_and_the_budget_is_never_exceeded(
    replicas: StartReplicas, redis_url: str
) -> None:
    group = await replicas()
    group.sim.configure(processing_seconds=0.2)
    a, b = group.clients
    limit = N * ESTIMATE
    headers = key_auth(await tenant_key(a, budget={"limit_micros": limit}))
    budget_key = keys.budget("acme", period_window(BudgetPeriod.MONTH, time.time()).id)
    samples: list[int] = []
    storm_over = threading.Event()

    def sample() -> None:
        """Samples from its own thread and connection, so it keeps sampling while the event loop is saturated."""
        sync = sync_client(redis_url)
        while not storm_over.is_set():
            spent, reserved = sync.hmget(budget_key, ["spent", "reserved"])
            samples.append(int(spent or 0) + int(reserved or 0))
        sync.close()

    async def submit(n: int) -> int:
        client = a if n % 2 else b
        return (await client.post(f"/queue/{T2V}", json={"prompt": f"p{n}"}, headers=headers)).status_code

    sampler = threading.Thread(target=sample)
    sampler.start()
    codes = await asyncio.gather(*(submit(n) for n in range(20 * N)))
    storm_over.set()
    sampler.join()

    assert codes.count(200) == N
    assert codes.count(402) == 19 * N
    assert group.sim.stats()["calls"]["submit"] == N
    assert len(samples) > 20, "the invariant was actually sampled during the storm"
    assert max(samples) <= limit
