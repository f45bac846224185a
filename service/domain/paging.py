"""Cursors of the paged lists kept in sorted sets (pure): a request history, a ledger of charges, webhook deliveries.

Entries are scored by the millisecond they were created in and listed newest first; Redis orders entries of the same
score by member, so a reverse listing gives ties in descending member order. A page's ``next`` cursor is
``<ms>:<member>``, the score and member of its last entry: the next page holds the entries after it in that order
(a lower score, or the same score and a lower member), so entries created in the same millisecond are all reached.
A bare ``<ms>`` (older cursors, or paging by time) means the entries of a lower score only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A whole number of milliseconds (at most 20 digits), and optionally ``:`` and a member without control characters.
CURSOR_PATTERN = r"^-?[0-9]{1,20}(:[^\x00-\x1f\x7f]{1,512})?$"
_CURSOR = re.compile(CURSOR_PATTERN)
CURSOR_DESCRIPTION = (
    "The `next` of the previous page (`<ms>:<id>`), or a time in milliseconds since the epoch: only entries "
    "created before it."
)


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: entries scored ``ms`` and, if ``member`` is set, at or above it in Redis's order."""

    ms: int
    member: str | None = None

    def passes(self, member: str, score: float) -> bool:
        """Whether an entry with ``member`` and ``score`` (at most ``ms``) comes after the cursor, newest first."""
        if score != self.ms:
            return score < self.ms
        # Python compares code points, which orders strings as Redis orders their UTF-8 bytes.
        return self.member is not None and member < self.member


def parse_cursor(text: str) -> Cursor | None:
    """The cursor ``text`` is, or None if it is none (a page's ``next``, or a bare millisecond)."""
    if _CURSOR.fullmatch(text) is None:
        return None
    ms, sep, member = text.partition(":")
    return Cursor(int(ms), member if sep else None)


def cursor_text(member: str, score: float) -> str:
    """The cursor of the page whose last entry is ``member`` with ``score``."""
    return f"{int(score)}:{member}"
