"""Budget periods (service/domain/budgets.py): each period id names its calendar window, and its end is found from
the id alone, as settlement needs it to know how long the period's totals are kept."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.config import Settings
from service.domain.budgets import BudgetPeriod, period_end, period_window

MOMENTS = [datetime(2026, 12, 31, 23, 59, tzinfo=UTC), datetime(2028, 2, 29, 0, 0, tzinfo=UTC)]


@pytest.mark.parametrize("period", list(BudgetPeriod))
@pytest.mark.parametrize("moment", MOMENTS)
def test_the_end_read_from_a_period_id_is_its_windows_end(period: BudgetPeriod, moment: datetime) -> None:
    window = period_window(period, moment.timestamp())
    assert period_end(window.id) == window.end


def test_the_ends_are_the_next_calendar_boundaries() -> None:
    assert period_end("m2026-12") == datetime(2027, 1, 1, tzinfo=UTC)
    assert period_end("w2026-12-28") == datetime(2027, 1, 4, tzinfo=UTC)
    assert period_end("d2028-02-29") == datetime(2028, 3, 1, tzinfo=UTC)
    assert period_end("total") is None


@pytest.mark.parametrize("period_id", ["", "x2026-01", "m2026-13", "d2026-02-30", "total2"])
def test_anything_else_is_not_a_period(period_id: str) -> None:
    with pytest.raises(ValueError):
        period_end(period_id)


def test_the_ledger_retention_is_0_or_outlives_every_job() -> None:
    with pytest.raises(ValueError, match="GATEWAY_LEDGER_RETENTION_SECONDS must be 0 or at least"):
        Settings(ledger_retention_seconds=3600, job_retention_seconds=7200)
    assert Settings(ledger_retention_seconds=0).ledger_retention_seconds == 0
    assert Settings(ledger_retention_seconds=7200, job_retention_seconds=7200).ledger_retention_seconds == 7200
