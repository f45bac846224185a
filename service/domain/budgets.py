"""Budgets (pure): the budget a tenant may have, its calendar periods in UTC, and which alert thresholds a change in
committed spend crosses.

A period is identified by an id that names its start (``d2026-11-21``, ``w2026-11-16`` for the ISO week starting
that Monday, ``m2026-11``, or ``total``), so a charge is always booked to the period in which it was reserved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

ALERT_PERCENTS = (80, 90, 100)


class BudgetPeriod(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    TOTAL = "total"


class Budget(BaseModel):
    """A hard spending limit in integer micro-USD per period, with an optional soft limit that only alerts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    limit_micros: int = Field(ge=0, description="Hard limit: reserved + spent never exceeds it")
    period: BudgetPeriod = BudgetPeriod.MONTH
    soft_limit_micros: int | None = Field(default=None, ge=0, description="Alert threshold, below the limit")

    @model_validator(mode="after")
    def _soft_below_hard(self) -> Budget:
        if self.soft_limit_micros is not None and self.soft_limit_micros > self.limit_micros:
            raise ValueError("soft_limit_micros must not exceed limit_micros")
        return self


@dataclass(frozen=True, slots=True)
class PeriodWindow:
    id: str
    start: datetime | None
    end: datetime | None


def period_window(period: BudgetPeriod, now: float) -> PeriodWindow:
    """The calendar period (UTC) containing ``now``; ``total`` has no bounds."""
    moment = datetime.fromtimestamp(now, UTC)
    today = moment.date()
    if period is BudgetPeriod.DAY:
        return _window(f"d{today.isoformat()}", today, today + timedelta(days=1))
    if period is BudgetPeriod.WEEK:
        monday = today - timedelta(days=today.weekday())
        return _window(f"w{monday.isoformat()}", monday, monday + timedelta(days=7))
    if period is BudgetPeriod.MONTH:
        first = today.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return _window(f"m{first:%Y-%m}", first, following)
    return PeriodWindow("total", None, None)


def period_end(period_id: str) -> datetime | None:
    """When the period named by ``period_id`` (as :func:`period_window` names it) ends; None for ``total``.

    Raises:
        ValueError: ``period_id`` is not one of those names.
    """
    if period_id == "total":
        return None
    kinds = {
        "d": (BudgetPeriod.DAY, "%Y-%m-%d"),
        "w": (BudgetPeriod.WEEK, "%Y-%m-%d"),
        "m": (BudgetPeriod.MONTH, "%Y-%m"),
    }
    if period_id[:1] not in kinds:
        raise ValueError(f"not a budget period id: {period_id!r}")
    period, layout = kinds[period_id[:1]]
    start = datetime.strptime(period_id[1:], layout).replace(tzinfo=UTC)
    return period_window(period, start.timestamp()).end


def _window(period_id: str, start: date, end: date) -> PeriodWindow:
    return PeriodWindow(
        period_id,
        datetime(start.year, start.month, start.day, tzinfo=UTC),
        datetime(end.year, end.month, end.day, tzinfo=UTC),
    )


def crossed_alerts(budget: Budget, before: int, after: int) -> list[str]:
    """Alert names whose threshold lies in (before, after]: ``soft_limit`` and ``80``/``90``/``100`` (percent)."""
    thresholds: list[tuple[str, int]] = [(str(p), -(-budget.limit_micros * p // 100)) for p in ALERT_PERCENTS]
    if budget.soft_limit_micros is not None:
        thresholds.append(("soft_limit", budget.soft_limit_micros))
    return sorted(name for name, level in thresholds if before < level <= after)


@dataclass(frozen=True, slots=True)
class Charge:
    """One settled request in the ledger, with everything needed to reconcile it against fal's invoice."""

    request_id: str
    endpoint_id: str
    resolution: str
    aspect_ratio: str
    duration: int
    audio: bool
    width: int
    height: int
    frames: int
    tokens: int
    cost_micros: int
    cost_usd: str
    estimate_micros: int
    size_source: str
    settled_at: str | None
