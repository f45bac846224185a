"""The audit log of admin actions (who, what, when), kept in a capped Redis stream and read through the admin API.

"Who" is what the gateway can know about an admin caller: the source address, the user agent, the operator name
the CLI sends in ``X-Gateway-Actor`` (self-declared, for humans), and a short fingerprint of the admin token used
(a hash prefix: it identifies which token without revealing it). Details never contain secrets.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, cast

from litestar import Request
from redis.asyncio import Redis

from service import keys
from service.domain.tenants import iso
from service.http import client_address


@dataclass(frozen=True, slots=True)
class Actor:
    source: str
    user_agent: str | None
    operator: str | None
    token_fingerprint: str | None


MAX_ACTOR_LENGTH = 200
# A page cursor is the id of a stream entry as Redis writes it: ``<ms>`` or ``<ms>-<seq>``, each part an unsigned
# 64-bit integer without leading zeros.
_CURSOR = re.compile(r"(?:0|[1-9][0-9]{0,19})(?:-(?:0|[1-9][0-9]{0,19}))?")
_MAX_ID_PART = 2**64 - 1


def actor_of(request: Request[Any, Any, Any], *, trusted_proxy_hops: int) -> Actor:
    """Who is making an admin request, as far as the gateway can tell."""
    token = (request.headers.get("authorization") or "").partition(" ")[2].strip()
    return Actor(
        source=client_address(request.scope, trusted_proxy_hops),
        user_agent=request.headers.get("user-agent"),
        operator=(request.headers.get("x-gateway-actor") or "")[:MAX_ACTOR_LENGTH] or None,
        token_fingerprint=token_fingerprint(token) if token else None,
    )


def is_cursor(text: str) -> bool:
    """Whether ``text`` is a stream entry id, the only cursor the audit log hands out (and Redis takes)."""
    return _CURSOR.fullmatch(text) is not None and all(int(part) <= _MAX_ID_PART for part in text.split("-"))


def token_fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:12]


class AuditLog:
    def __init__(self, redis: Redis, *, max_entries: int, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._max = max_entries
        self._clock = clock

    async def record(self, actor: Actor, action: str, target: str, details: dict[str, Any] | None = None) -> None:
        entry = {
            "at": repr(self._clock()),
            "action": action,
            "target": target,
            "actor": json.dumps(asdict(actor)),
            "details": json.dumps(details or {}),
        }
        await self._redis.xadd(keys.audit_log(), cast("dict[Any, Any]", entry), maxlen=self._max, approximate=True)

    async def read(self, *, limit: int, before: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first. Returns the entries and the cursor for the next (older) page, if there may be one.
        ``before`` must be a cursor (:func:`is_cursor`); nothing is older than entry ``0-0``."""
        if before == "0-0":
            return [], None
        upper = f"({before}" if before else "+"
        rows = cast(
            "list[tuple[str, dict[str, str]]]",
            await self._redis.xrevrange(keys.audit_log(), max=upper, min="-", count=limit),
        )
        entries = [
            {
                "id": entry_id,
                "at": iso(float(fields["at"])),
                "action": fields["action"],
                "target": fields["target"],
                "actor": json.loads(fields["actor"]),
                "details": json.loads(fields["details"]),
            }
            for entry_id, fields in rows
        ]
        return entries, rows[-1][0] if len(rows) == limit else None
