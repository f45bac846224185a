"""The deployment artefacts agree with one another and with the docs, without any external tool: the alert rules
(one file, read by the chart), the Grafana dashboard, the chart's metadata and docs/observing.md. The tools' own
checks (hadolint, helm, kubernetes-validate, promtool, the dashboard generator) run in .ci/deploy-checks."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no type hints; types-PyYAML is not a dev dependency

from tests.support.deploy import (
    ALERTS,
    CHART,
    CHART_ALERTS,
    PROMETHEUS_OWN,
    REPO,
    alert_rules,
    all_metric_names,
    dashboard,
    dashboard_panels,
    dashboard_variable_metrics,
    exported,
    metric_names,
    referenced_metrics,
)

OBSERVING = REPO / "docs" / "observing.md"
SEVERITIES = {"critical", "warning", "info"}


def test_the_chart_reads_the_same_alerts_file() -> None:
    assert ALERTS.read_bytes() == CHART_ALERTS.read_bytes(), (
        "deploy/prometheus/alerts.yaml must be the chart's files/alerts.yaml (a symlink to it)"
    )


def test_each_alert_has_a_severity_a_summary_a_description_and_a_runbook() -> None:
    rules = alert_rules()
    assert rules
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "alert names must be unique"
    for rule in rules:
        assert rule["expr"].strip(), rule["alert"]
        assert rule.get("labels", {}).get("severity") in SEVERITIES, rule["alert"]
        annotations = rule.get("annotations", {})
        assert annotations.get("summary", "").strip(), rule["alert"]
        assert annotations.get("description", "").strip(), rule["alert"]
        assert annotations.get("runbook") == f"docs/observing.md#{rule['alert'].lower()}", rule["alert"]


def test_every_alert_has_a_runbook_entry_and_a_promtool_test() -> None:
    headings = set(re.findall(r"^#{2,4} +(\S+)\s*$", OBSERVING.read_text(encoding="utf-8"), flags=re.MULTILINE))
    tests = yaml.safe_load((ALERTS.parent / "alerts_test.yaml").read_text(encoding="utf-8"))["tests"]
    fired = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case.get("exp_alerts")}
    for rule in alert_rules():
        assert rule["alert"] in headings, f"docs/observing.md has no runbook heading for {rule['alert']}"
        assert rule["alert"] in fired, f"deploy/prometheus/alerts_test.yaml never expects {rule['alert']} to fire"


def test_every_dashboard_panel_queries_something() -> None:
    panels = dashboard_panels()
    assert len(panels) > 20
    for panel in panels:
        targets = panel.get("targets", [])
        assert targets, panel["title"]
        for target in targets:
            assert target.get("expr", "").strip(), panel["title"]
            assert target.get("refId"), panel["title"]
            assert target.get("datasource", {}).get("uid") == "${datasource}", panel["title"]


def test_the_dashboard_has_a_datasource_and_a_tenant_variable_and_unique_ids() -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["tenant"]["type"] == "query"
    assert dashboard_variable_metrics(board) == {"gateway_budget_spent_micros"}
    rows = [panel for panel in board["panels"] if panel["type"] == "row"]
    ids = [row["id"] for row in rows] + [panel["id"] for panel in dashboard_panels(board)]
    assert len(ids) == len(set(ids)) == len(rows) + len(dashboard_panels(board))
    assert all(isinstance(panel_id, int) and panel_id > 0 for panel_id in ids)


def test_money_is_shown_in_dollars() -> None:
    for panel in dashboard_panels():
        exprs = [target["expr"] for target in panel["targets"]]
        if any("micros" in expr for expr in exprs) and panel["fieldConfig"]["defaults"].get("unit") != "percentunit":
            assert panel["fieldConfig"]["defaults"]["unit"] == "currencyUSD", panel["title"]
            assert all(expr.endswith("/ 1e6") for expr in exprs), panel["title"]


def test_only_gateway_metrics_and_prometheus_own_series_are_used() -> None:
    strays = {name for name in all_metric_names() if not name.startswith("gateway_")} - PROMETHEUS_OWN
    assert not strays


def test_the_required_metrics_are_referenced() -> None:
    names = referenced_metrics()
    for name in (
        "gateway_http_requests_total",
        "gateway_http_overhead_seconds_bucket",
        "gateway_upstream_request_duration_seconds_bucket",
        "gateway_upstream_requests_total",
        "gateway_upstream_circuit_state",
        "gateway_jobs_in_flight",
        "gateway_jobs_completed_total",
        "gateway_tracker_lag_seconds_bucket",
        "gateway_budget_spent_micros",
        "gateway_budget_reserved_micros",
        "gateway_budget_limit_micros",
        "gateway_charges_micros_total",
        "gateway_cache_lookups_total",
        "gateway_cache_saved_micros_total",
        "gateway_webhook_deliveries_total",
        "gateway_webhook_attempts_total",
        "gateway_webhook_queue_depth",
        "gateway_webhook_oldest_pending_seconds",
        "gateway_webhook_dead_letters_total",
        "gateway_redis_command_duration_seconds_bucket",
        "gateway_redis_up",
    ):
        assert name in names


def test_every_referenced_metric_is_documented() -> None:
    families = {_family(name) for name in referenced_metrics()}
    text = OBSERVING.read_text(encoding="utf-8")
    missing = sorted(name for name in families if f"`{name}`" not in text)
    assert not missing, f"docs/observing.md does not list {missing}"


def test_the_chart_app_version_is_the_project_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert chart["apiVersion"] == "v2"
    assert str(chart["appVersion"]) == project["version"]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("sum by (route) (rate(gateway_http_requests_total[5m]))", {"gateway_http_requests_total"}),
        (
            'histogram_quantile(0.99, sum by (le, op) (rate(h_seconds_bucket{op="x"}[5m:1m] offset 1h)))',
            {"h_seconds_bucket"},
        ),
        ("gateway_upstream_circuit_state == 2", {"gateway_upstream_circuit_state"}),
        ("max(gateway_webhook_oldest_pending_seconds) > 600", {"gateway_webhook_oldest_pending_seconds"}),
        (
            '(a_micros{tenant=~"$tenant"} + b_micros) / on (tenant) group_left (x) (c_micros > 0) * 1e6',
            {"a_micros", "b_micros", "c_micros"},
        ),
        ('absent(up{job=~".*by (x) and sum(y)"} == 1) or vector(0)', {"up"}),
        ('label_replace(m, "dst", "$1", "src", "(.*)") unless ignoring (le) n AND BOOL', {"m", "n"}),
        ("sum(increase(d_total[$__range])) / 1e6 + 0x1F + .5e3", {"d_total"}),
    ],
)
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_exported_matches_series_names_to_families() -> None:
    families = {"c": "counter", "h": "histogram", "g": "gauge", "s": "summary"}
    assert exported("c_total", families)
    assert not exported("c", families)
    assert exported("h_bucket", families)
    assert exported("h_count", families)
    assert not exported("h", families)
    assert exported("g", families)
    assert not exported("g_total", families)
    assert exported("s_sum", families)
    assert not exported("s_bucket", families)
    assert not exported("missing", families)


def _family(name: str) -> str:
    """The name docs/observing.md lists: a counter's series name (with ``_total``), a histogram's base name."""
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def test_docs_name_files_that_exist() -> None:
    for doc in ("deploying.md", "observing.md"):
        text = (REPO / "docs" / doc).read_text(encoding="utf-8")
        for path in re.findall(r"`((?:deploy|\.ci|docs)/[\w./-]+)`", text):
            if path.startswith(".ci/.tools"):  # made by .ci/deploy-checks, git-ignored
                continue
            assert (REPO / Path(path)).exists(), f"docs/{doc} names {path}, which does not exist"
