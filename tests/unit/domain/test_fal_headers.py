"""X-Fal-Request-Timeout as fal checks it (service/domain/fal_headers.py)."""

from __future__ import annotations

import pytest

from service.domain.fal_headers import InvalidStartTimeout, start_timeout


@pytest.mark.parametrize(("value", "seconds"), [(None, None), ("30", 30.0), (" 2.5 ", 2.5), ("0.2", 0.2)])
def test_a_number_of_seconds_is_the_deadline(value: str | None, seconds: float | None) -> None:
    assert start_timeout(value) == seconds


@pytest.mark.parametrize("value", ["", "soon", "0.1", "0", "-5", "nan", "inf", "1e400", "30s", "x" * 500])
def test_anything_else_is_refused_and_quoted_briefly(value: str) -> None:
    with pytest.raises(InvalidStartTimeout) as raised:
        start_timeout(value)
    assert "X-Fal-Request-Timeout" in str(raised.value)
    assert len(str(raised.value)) < 150
