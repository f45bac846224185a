"""The fault rig: gateway and simulator processes, a private Redis, a resetting proxy, careful clients, the observer."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, cast

import httpx
import pytest
import redis

from service import keys
from tests.support.e2e import ROOT, SIM_KEY, Processes
from tests.support.endpoints import T2V
from tests.support.faults import (
    Answer,
    Charge,
    JobRecord,
    Observation,
    TenantBooks,
    job_record,
    unsettled,
    violations,
)
from tests.support.loopback import free_port, wait_ready

SUBMIT_TIMEOUT = 1.0  # GATEWAY_UPSTREAM_SUBMIT_TIMEOUT_SECONDS: the faults' delays are set around it
READ_TIMEOUT = 2.0  # GATEWAY_UPSTREAM_READ_TIMEOUT_SECONDS: also the retry budget of a status poll
# Small enough that every fault's leftovers clear within seconds: a provisional admission (its job never recorded)
# frees itself after 2 s plus a reconcile round, and a job stuck mid-submit fails after the submit timeout plus the
# tracker's 2 s lease.
FAULT_ENV = {
    "GATEWAY_UPSTREAM_SUBMIT_TIMEOUT_SECONDS": str(SUBMIT_TIMEOUT),
    "GATEWAY_UPSTREAM_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT),
    "GATEWAY_UPSTREAM_CONNECT_TIMEOUT_SECONDS": "1",
    "GATEWAY_ADMISSION_PROVISIONAL_SECONDS": "2",
    "GATEWAY_BUDGET_RECONCILE_INTERVAL_SECONDS": "0.5",
    "GATEWAY_REDIS_SOCKET_TIMEOUT_SECONDS": "0.5",
    "GATEWAY_AUTH_CACHE_SECONDS": "30",
}
# An interpreter that has imported the service and waits for one order on stdin (environment, arguments, log file),
# then runs what ``python -m service <argv>`` runs. A process start then costs a fraction of a second, not the
# seconds of the imports, so a restart is as quick as a supervisor's and the suite's time goes to the faults.
WARM = """\
import json, os, pathlib, sys
import service.app, service.cli, service.simulator.app
pathlib.Path(sys.argv[1]).touch()
order = json.loads(sys.stdin.readline())
log = os.open(order["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
os.dup2(log, 1)
os.dup2(log, 2)
os.environ.clear()
os.environ.update(order["env"])
sys.exit(service.cli.main(order["argv"]))
"""
SIMULATOR_ARGS = ("--queue-seconds", "0.3", "--processing-seconds", "1.5", "--fal-key", SIM_KEY)  # as Processes'
CLIENT_TIMEOUT = 20.0  # a careful client waits out every retry the gateway makes before answering
BUDGET = {"limit_micros": 10**9}
TENANTS: dict[str, dict[str, Any]] = {
    "seeded": {"budget": BUDGET},  # seeds from a small set: cache hits and single-flight followers
    "plain": {},  # no budget: unlimited, but still reserved and booked
    "capped": {"budget": BUDGET, "policy": {"max_concurrent": 3}},  # some 429s
}


def until(condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout}s")
        time.sleep(interval)


@dataclass
class FaultRig(Processes):
    """The e2e rig with the fault knobs set small; ``upstream_port`` puts something (a proxy) in front of fal."""

    upstream_port: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    pool: WarmPool | None = None  # where processes start from (None: cold, as Processes starts them)
    owns_simulator: bool = True  # False: a simulator shared by the session, reset for each test and left running
    past_upstream_ids: list[str] = field(default_factory=list)

    def gateway_env(self) -> dict[str, str]:
        env = super().gateway_env() | FAULT_ENV | self.extra_env
        if self.upstream_port is not None:
            env["GATEWAY_UPSTREAM_URL"] = f"http://127.0.0.1:{self.upstream_port}"
        return env

    def start_gateway(self) -> None:
        if self.pool is None:
            super().start_gateway()
            return
        log = self.tmp / f"gateway-{len(self.logs)}.log"
        self.logs.append(log)
        gateway = self.gateway = self.pool.run(["serve"], self.gateway_env(), log)
        wait_ready(f"{self.gw_url}/healthz", verify=self.tls(), alive=lambda: gateway.poll() is None)

    def start_simulator(self) -> None:
        if self.pool is None:
            super().start_simulator()
            return
        log = self.tmp / f"simulator-{len(self.logs)}.log"
        self.logs.append(log)
        args = ["simulator", "--port", str(self.sim_port), *SIMULATOR_ARGS]
        simulator = self.simulator = self.pool.run(args, dict(os.environ), log)
        wait_ready(f"{self.sim_url}/_sim/stats", alive=lambda: simulator.poll() is None)

    def stop(self) -> None:
        if not self.owns_simulator:
            self.simulator = None
        super().stop()

    def reset_simulator(self) -> None:
        """Forget the jobs, faults and statistics of earlier tests (a shared simulator keeps its process)."""
        assert self.simulator is not None
        assert self.simulator.poll() is None, "the shared simulator died"
        assert httpx.post(f"{self.sim_url}/_sim/reset", timeout=5).status_code == 200

    def ready_to_start(self) -> None:
        """Before a planned restart: make the next process start at once."""
        if self.pool is not None:
            self.pool.ready()

    def stop_simulator(self) -> None:
        """Stop the simulator (its jobs die with it); what it had created is kept for the upstream count."""
        assert self.simulator is not None
        self.past_upstream_ids += list(self.sim_stats()["requests"])
        self.simulator.send_signal(signal.SIGTERM)
        self.simulator.wait(timeout=15)

    def upstream_ids(self) -> list[str]:
        return [*self.past_upstream_ids, *self.sim_stats()["requests"]]

    def faults_left(self) -> list[dict[str, Any]]:
        armed: list[dict[str, Any]] = httpx.get(f"{self.sim_url}/_sim/faults", timeout=5).json()
        return armed

    def tenant(self, tenant_id: str, **fields: Any) -> str:
        created = self.admin("POST", "/admin/tenants", json={"id": tenant_id, "name": tenant_id, **fields})
        assert created.status_code == 201, created.text
        return self.new_key(tenant_id)

    def tenants(self) -> dict[str, str]:
        """The suite's tenants, created, and a key of each."""
        return {tenant_id: self.tenant(tenant_id, **fields) for tenant_id, fields in TENANTS.items()}


class WarmPool:
    """Pre-imported interpreters (``WARM``), ``spares`` of them kept ready; each runs one command, then exits."""

    def __init__(self, directory: Path, spares: int = 2) -> None:
        self._dir = directory
        self._spares: list[tuple[subprocess.Popen[bytes], Path]] = []
        self._made = 0
        for _ in range(spares):
            self._spawn()

    def run(self, argv: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        """Start ``python -m service <argv>`` with ``env``, its output appended to ``log``, from the oldest spare."""
        proc, ready = self._spares.pop(0)
        self._spawn()
        until(lambda: ready.exists() or proc.poll() is not None, timeout=30, what="a warm interpreter")
        assert proc.poll() is None, "a warm interpreter exited"
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({"argv": list(argv), "env": env, "log": str(log)}).encode() + b"\n")
        proc.stdin.close()
        return proc

    def ready(self) -> None:
        """Wait until the next :meth:`run` can start at once (before a planned restart, not during its outage)."""
        proc, ready = self._spares[0]
        until(lambda: ready.exists() or proc.poll() is not None, timeout=30, what="a warm interpreter")

    def close(self) -> None:
        for proc, _ in self._spares:
            proc.kill()
            proc.wait(timeout=10)
        self._spares.clear()

    def _spawn(self) -> None:
        self._made += 1
        ready = self._dir / f"warm-{self._made}.ready"
        with (self._dir / f"warm-{self._made}.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-c", WARM, str(ready)], cwd=ROOT, stdin=subprocess.PIPE, stdout=log, stderr=log
            )
        self._spares.append((proc, ready))


class PrivateRedis:
    """A redis-server of the test's own on a free loopback port: restarted, stopped and frozen at will, never 6379.

    No background saves and no AOF; a stop is ``SHUTDOWN SAVE``, so the data outlives a restart, as for an operator's
    planned restart."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            pytest.skip("redis-server is not installed")
        self._binary = binary
        self._dir = directory
        self.port = free_port()
        assert self.port != 6379
        self._proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5)

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self._dir), "--dbfilename", "dump.rdb", "--protected-mode", "no"]
        with (self._dir / "redis.log").open("ab") as log:
            self._proc = subprocess.Popen([self._binary, *args], stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1
        until(self._answers, timeout=10, what="the private redis-server answering PING")

    def stop(self) -> None:
        """``SHUTDOWN SAVE``: what it acknowledged is on disk, and the port is free once it returns."""
        proc = self._proc
        assert proc is not None
        with self.client() as client:
            client.shutdown(save=True)
        proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def freeze(self) -> None:
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGCONT)

    def close(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait(timeout=10)

    def _answers(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.RedisError:
            return False


class ResetProxy:
    """A loopback TCP proxy in front of the simulator. While armed, a submit (a POST) reaches the simulator, which
    creates the job, and then the gateway's connection is reset (RST) instead of getting fal's answer: a connection
    reset after the request was sent, which the simulator cannot do on its own."""

    def __init__(self, target_port: int) -> None:
        self._target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._armed = 0
        self.resets = 0
        self._sockets: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, submits: int) -> None:
        with self._lock:
            self._armed += submits

    def close(self) -> None:
        self._closed = True
        with self._lock:
            for sock in [self._listener, *self._sockets]:
                _shut(sock)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target)
            except OSError:  # the simulator is down: the gateway sees its connection closed, as without a proxy
                _shut(client)
                continue
            with self._lock:
                self._sockets |= {client, upstream}
            connection = _ProxiedConnection(self, client, upstream)
            threading.Thread(target=connection.requests, daemon=True).start()
            threading.Thread(target=connection.responses, daemon=True).start()

    def take_reset(self) -> bool:
        with self._lock:
            if self._armed <= 0:
                return False
            self._armed -= 1
            self.resets += 1
            return True


@dataclass
class _ProxiedConnection:
    proxy: ResetProxy
    client: socket.socket
    upstream: socket.socket
    posting: bool = False  # the request awaiting its answer is a POST (one at a time: httpx does not pipeline)
    resetting: bool = False

    def requests(self) -> None:
        with contextlib.suppress(OSError):
            while data := self.client.recv(65536):
                if data[:1].isalpha():  # a request line starts a new request; a JSON body starts with "{"
                    self.posting = data.startswith(b"POST ")
                self.upstream.sendall(data)
        self._close()

    def responses(self) -> None:
        with contextlib.suppress(OSError):
            while data := self.upstream.recv(65536):
                if self.posting and self.proxy.take_reset():
                    self._reset()
                    return
                self.posting = False
                self.client.sendall(data)
        self._close()

    def _reset(self) -> None:
        """Close the gateway's side with SO_LINGER 0, which sends an RST. A close is deferred while another thread
        is blocked reading the socket, so the reader is woken first (SHUT_RD sends nothing on TCP) and it closes."""
        self.resetting = True
        self.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.client.shutdown(socket.SHUT_RD)

    def _close(self) -> None:
        if self.resetting:  # no shutdown: that would send a FIN before the RST
            with contextlib.suppress(OSError):
                self.client.close()
        else:
            _shut(self.client)
        _shut(self.upstream)


def _shut(sock: socket.socket) -> None:
    """Close a socket another thread may be blocked on: a plain close is deferred until that thread returns, so
    shut it down first (that wakes the thread; with SO_LINGER 0 already set, the close then sends the RST)."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


@dataclass(frozen=True, slots=True)
class Submit:
    tenant: str
    body: dict[str, Any]


def mixed_plan(tag: str, count: int) -> list[Submit]:
    """``count`` submits over the suite's tenants in turn. The seeded tenant repeats four (prompt, seed) pairs, so
    some of its submits lead, some follow one in flight and some are answered from the cache."""
    plan: list[Submit] = []
    for i in range(count):
        tenant = tuple(TENANTS)[i % len(TENANTS)]
        body: dict[str, Any] = {"prompt": f"{tag} {tenant} {i}"}
        if tenant == "seeded":
            body = {"prompt": f"{tag} shared", "seed": (i // len(TENANTS)) % 4}
        elif i % 2:
            body["generate_audio"] = False
        plan.append(Submit(tenant, body))
    return plan


class Load:
    """Careful clients submitting ``plan`` at ``rate`` per second: every answer is recorded, nothing is retried."""

    def __init__(self, rig: FaultRig, tenant_keys: dict[str, str], plan: Sequence[Submit], *, rate: float) -> None:
        self._rig = rig
        self._keys = tenant_keys
        self._plan = list(plan)
        self._rate = rate
        self._tls = rig.tls()
        self._lock = threading.Lock()
        self._answers: list[Answer] = []
        self._errors: list[BaseException] = []
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="client")
        self._dispatcher = threading.Thread(target=self._dispatch, daemon=True)

    def __enter__(self) -> Self:
        self._dispatcher.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._dispatcher.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._answers)

    def wait_answers(self, count: int, timeout: float = 30.0) -> None:
        until(lambda: self.count >= count, timeout=timeout, what=f"{count} answers")

    def join(self, timeout: float = 40.0) -> list[Answer]:
        """Wait for every planned submit's answer; the answers, in the order they came."""
        self.wait_answers(len(self._plan), timeout)
        with self._lock:
            if self._errors:
                raise self._errors[0]
            return list(self._answers)

    def _dispatch(self) -> None:
        started = time.monotonic()
        for i, submit in enumerate(self._plan):
            # Pacing, not synchronisation: submit i is due i / rate seconds after the start.
            if self._stop.wait(max(0.0, started + i / self._rate - time.monotonic())):
                return
            self._pool.submit(self._one, submit)

    def _one(self, submit: Submit) -> None:
        try:
            answer = self._send(submit)
        except Exception as exc:  # noqa: BLE001 - surfaced by join(): a client bug fails the test, not just its thread
            with self._lock:
                self._errors.append(exc)
                self._answers.append(Answer(submit.tenant, None))
            return
        with self._lock:
            self._answers.append(answer)

    def _send(self, submit: Submit) -> Answer:
        try:
            response = httpx.post(
                f"{self._rig.gw_url}/queue/{T2V}",
                json=submit.body,
                headers={"Authorization": f"Key {self._keys[submit.tenant]}"},
                verify=self._tls,
                timeout=CLIENT_TIMEOUT,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout):
            return Answer(submit.tenant, None, sent=False)  # it never reached the gateway
        except httpx.TransportError:
            return Answer(submit.tenant, None)  # sent, never answered: the outcome is unknown
        try:
            body = response.json()
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        error_type = body.get("error_type") or response.headers.get("x-fal-error-type")
        request_id = body.get("request_id") if response.status_code == 200 or "request_id" in body else None
        return Answer(
            submit.tenant,
            response.status_code,
            error_type=error_type if response.status_code != 200 else None,
            request_id=str(request_id) if request_id is not None else None,
            cache=response.headers.get("x-gateway-cache"),
        )


def observe(rig: FaultRig, store: redis.Redis, tenant_ids: Sequence[str], answers: Sequence[Answer]) -> Observation:
    """Everything the invariants read: the admin API, the Redis keys of the tenants and jobs, the simulator."""
    ids: set[str] = {str(a.request_id) for a in answers if a.accepted}
    books: dict[str, TenantBooks] = {}
    now_ms = int(time.time() * 1000)
    for tenant_id in tenant_ids:
        ids |= set(cast("list[str]", store.zrange(keys.tenant_requests(tenant_id), 0, -1)))
        usage = _admin_json(rig, f"/admin/tenants/{tenant_id}/usage")
        books[tenant_id] = TenantBooks(
            history=_history(rig, tenant_id),
            charges=_charges(rig, tenant_id),
            reserved_micros=int(usage["reserved_micros"]),
            spent_micros=int(usage["spent_micros"]),
            reservations=frozenset(cast("list[str]", store.hkeys(keys.reservations(tenant_id)))),
            inflight=frozenset(cast("list[str]", store.zrangebyscore(keys.inflight(tenant_id), now_ms, "+inf"))),
        )
    jobs: dict[str, JobRecord] = {}
    for rid in sorted(ids):
        fields = cast("dict[str, str]", store.hgetall(keys.job(rid)))
        if fields:
            jobs[rid] = job_record(rid, fields)
    due = frozenset(cast("list[str]", store.zrange(keys.tracker_due(), 0, -1)))
    return Observation(answers=answers, jobs=jobs, tenants=books, upstream_ids=rig.upstream_ids(), due=due)


def settled_observation(
    rig: FaultRig,
    store: redis.Redis,
    tenant_ids: Sequence[str],
    answers: Sequence[Answer],
    *,
    timeout: float = 30.0,
) -> Observation:
    """Poll until nothing is moving any more (every job finished, nothing scheduled, held or reserved); fail with
    what still moves, and every broken invariant, after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        obs = observe(rig, store, tenant_ids, answers)
        pending = unsettled(obs)
        if not pending:
            return obs
        if time.monotonic() > deadline:
            pytest.fail(f"not settled within {timeout}s:\n" + "\n".join(pending + violations(obs)))
        time.sleep(0.25)


def assert_invariants(obs: Observation) -> None:
    """Fail with every broken invariant, one per line."""
    broken = violations(obs)
    assert not broken, "\n".join(broken)


def _admin_json(rig: FaultRig, path: str, **params: Any) -> dict[str, Any]:
    response = rig.admin("GET", path, params=params)
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
    body: dict[str, Any] = response.json()
    return body


def _history(rig: FaultRig, tenant_id: str) -> dict[str, str]:
    statuses: dict[str, str] = {}
    cursor: str | None = None
    for _ in range(100):  # bounded: 500 per page
        params: dict[str, Any] = {"limit": 500} | ({"before": cursor} if cursor else {})
        page = _admin_json(rig, f"/admin/tenants/{tenant_id}/requests", **params)
        statuses |= {entry["request_id"]: entry["status"] for entry in page["requests"]}
        cursor = page["next"]
        if cursor is None:
            return statuses
    pytest.fail("the request history never ended")


def _charges(rig: FaultRig, tenant_id: str) -> list[Charge]:
    charges: list[Charge] = []
    cursor: str | None = None
    for _ in range(100):
        params: dict[str, Any] = {"limit": 1000} | ({"before": cursor} if cursor else {})
        page = _admin_json(rig, f"/admin/tenants/{tenant_id}/charges", **params)
        charges += [Charge(entry["request_id"], int(entry["cost_micros"])) for entry in page["charges"]]
        cursor = page["next"]
        if cursor is None:
            return charges
    pytest.fail("the ledger never ended")


@contextlib.contextmanager
def running(rig: FaultRig) -> Iterator[FaultRig]:
    """The rig's simulator and gateway, stopped on exit whatever happened."""
    try:
        if rig.owns_simulator:
            rig.start_simulator()
        else:
            rig.reset_simulator()
        rig.start_gateway()
        yield rig
    finally:
        rig.stop()


def drive(
    rig: FaultRig,
    store: redis.Redis,
    tag: str,
    inject: Callable[[Load], None],
    *,
    count: int = 45,
    rate: float = 10.0,
) -> tuple[list[Answer], Observation]:
    """Create the tenants, run ``count`` mixed submits at ``rate`` per second while ``inject`` acts (it gets the load,
    to wait for its progress), collect every answer, and return them with the settled observation."""
    tenant_keys = rig.tenants()
    with Load(rig, tenant_keys, mixed_plan(tag, count), rate=rate) as load:
        inject(load)
        answers = load.join()
    return answers, settled_observation(rig, store, list(tenant_keys), answers)
