"""The benchmark's pure parts: reading wrk's JSON line, the tables, the soak's verdict and the option parsers."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bench.options import env_pair, int_list
from bench.report import log_summary, markdown_table
from bench.scenarios import Cell
from bench.soak import trend
from bench.wrk import LUA_SCRIPT, MARKER, WrkFailed, WrkResult, parse_output

WRK_LINE = (
    'BENCH_JSON {"requests":12000,"duration_us":3000000,"bytes":1,'
    '"errors":{"connect":0,"read":1,"write":0,"status":7,"timeout":2},'
    '"latency_us":{"mean":1500.0,"stdev":10.0,"max":90000,"p50":1200,"p90":2500,"p99":8000}}'
)


def result(rps: float, p50: float, non_2xx: int = 0) -> WrkResult:
    return WrkResult(int(rps), 1.0, rps, non_2xx, 0, p50, p50, p50, p50 * 4, p50 * 8)


def test_the_done_hook_line_is_parsed_into_rates_errors_and_milliseconds() -> None:
    parsed = parse_output(f"Running 3s test\n  2 threads\n{WRK_LINE}\n")
    assert parsed.requests == 12000
    assert parsed.rps == 4000.0
    assert parsed.non_2xx == 7
    assert parsed.socket_errors == 3
    assert (parsed.p50_ms, parsed.p90_ms, parsed.p99_ms, parsed.max_ms) == (1.2, 2.5, 8.0, 90.0)


def test_no_result_line_is_an_error_that_shows_what_wrk_printed() -> None:
    with pytest.raises(WrkFailed, match="unable to connect"):
        parse_output("", "unable to connect to 127.0.0.1:1")


def test_the_lua_script_prints_the_marker_the_parser_reads() -> None:
    assert MARKER.strip() in LUA_SCRIPT.read_text()


def test_the_table_has_ratio_added_latency_and_flags_non_2xx() -> None:
    cells = [
        Cell("status", "status polls", 64, result(4000, 10.0), result(1000, 40.0), None),
        Cell("submit", "submits", 1, result(800, 1.0), result(100, 7.5, non_2xx=3), 0.5),
    ]
    table = markdown_table(cells).splitlines()
    assert table[0].startswith("| scenario")
    assert "0.25" in table[2]
    assert "+30.00" in table[2]
    assert "**gateway 3 non-2xx**" in table[3]
    assert len({len(line) for line in table}) == 1  # aligned columns


def test_a_soak_is_flat_when_the_second_half_barely_grows() -> None:
    samples = [{"t_s": t, "gateway_rss_mb": 100.0 + (0.01 * t if t > 60 else t / 10)} for t in range(0, 130, 10)]
    verdict = trend(samples, 5.0)
    assert verdict["verdict"] == "flat"
    assert verdict["first_mb"] == 100.0


def test_a_soak_that_keeps_growing_is_not_flat() -> None:
    samples = [{"t_s": t, "gateway_rss_mb": 100.0 + t / 5} for t in range(0, 130, 10)]
    verdict = trend(samples, 5.0)
    assert verdict["verdict"] == "growing"
    assert verdict["second_half_slope_mb_per_min"] == pytest.approx(12.0)


def test_log_summary_counts_events_by_level(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    log.write_text('{"level": "error", "event": "boom"}\n{"level": "error", "event": "boom"}\nplain text\n')
    assert log_summary(log) == {"error: boom": 2, "(not JSON)": 1}


def test_option_parsers() -> None:
    assert int_list("1,64,200") == [1, 64, 200]
    assert env_pair("GATEWAY_X=a=b") == ("GATEWAY_X", "a=b")
    with pytest.raises(argparse.ArgumentTypeError):
        int_list("1,x")
    with pytest.raises(argparse.ArgumentTypeError):
        env_pair("NOVALUE")
