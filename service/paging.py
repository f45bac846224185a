"""Paged lists kept in sorted sets, newest first, and their ``before`` parameter (``service/domain/paging.py``).

A page past a compound cursor is read inclusive of its millisecond and the entries at or above the cursor in that
millisecond are skipped; they are the leading ones, so reading a few more than a page is enough, and a batch wholly
skipped (many entries of one millisecond) is followed by a bigger one.
"""

from __future__ import annotations

from typing import Annotated, cast

from litestar.params import QueryParameter
from redis.asyncio import Redis

from service.domain.paging import CURSOR_DESCRIPTION, CURSOR_PATTERN, Cursor, cursor_text, parse_cursor
from service.errors import InvalidRequest

# The pattern is documented, not enforced by Litestar: before_cursor refuses a malformed one in its own words.
Before = Annotated[str | None, QueryParameter(description=CURSOR_DESCRIPTION, schema_extra={"pattern": CURSOR_PATTERN})]
Rows = list[tuple[str, float]]
MAX_ROUNDS = 32  # batches double while wholly skipped: 2**32 entries of one millisecond before a page gives up


def before_cursor(text: str | None) -> Cursor | None:
    """The ``before`` query parameter as a cursor; a malformed one is fal's 422 naming it."""
    if text is None:
        return None
    cursor = parse_cursor(text)
    if cursor is None:
        raise InvalidRequest(
            [
                {
                    "type": "value_error",
                    "loc": ["query", "before"],
                    "msg": "before must be the next of a previous page, or a time in milliseconds",
                    "input": text,
                }
            ]
        )
    return cursor


async def page_below(redis: Redis, key: str, *, limit: int, before: Cursor | None) -> tuple[Rows, str | None]:
    """Up to ``limit`` entries (member, score) of ``key`` after ``before``, newest first, and the cursor of the next
    page: only after a full page, as there may be no more."""
    if before is None or before.member is None:
        upper = "+inf" if before is None else f"({before.ms}"
        rows = await _read(redis, key, upper, offset=0, count=limit)
    else:
        rows = await _past_ties(redis, key, limit, before)
    return rows, cursor_text(*rows[-1]) if rows and len(rows) == limit else None


async def _past_ties(redis: Redis, key: str, limit: int, before: Cursor) -> Rows:
    rows: Rows = []
    offset, count = 0, limit + 1  # usually only the cursor's own entry is skipped
    for _ in range(MAX_ROUNDS):
        batch = await _read(redis, key, str(before.ms), offset=offset, count=count)
        rows += [row for row in batch if before.passes(*row)]
        offset += len(batch)
        if len(batch) < count or len(rows) >= limit:
            break
        count = limit - len(rows) if rows else count * 2  # once an entry passed, every later one does
    return rows[:limit]


async def _read(redis: Redis, key: str, upper: str, *, offset: int, count: int) -> Rows:
    return cast("Rows", await redis.zrevrangebyscore(key, upper, "-inf", start=offset, num=count, withscores=True))
