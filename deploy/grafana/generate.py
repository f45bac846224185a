# /// script
# requires-python = ">=3.11"
# dependencies = ["grafana-foundation-sdk==1769699379!11.6.0"]
# ///
"""Writes deploy/grafana/seedance-gateway.json, the gateway's Grafana dashboard, from the code below.

    uv run deploy/grafana/generate.py            # regenerate the committed JSON
    uv run deploy/grafana/generate.py --check    # exit 1 if the committed JSON differs from what this writes

``uv run`` reads the dependency pinned above (grafana-foundation-sdk for Grafana 11.6; its versions carry an epoch,
so a plain install would pick an older Grafana's build) into an environment of its own, apart from the project's
lock. The output is deterministic: fixed uid, ids assigned in order, keys sorted, no timestamps.
Every metric is described in docs/observing.md; money is integer micro-USD in the metrics, shown here in dollars.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import units
from grafana_foundation_sdk.models.common import StackingMode
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
    VariableRefresh,
    VariableSort,
)

OUTPUT = Path(__file__).with_name("seedance-gateway.json")
UID = "seedance-gateway"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
TENANT = 'tenant=~"$tenant"'
PROBES = 'route!~"/healthz|/readyz|/metrics"'
WIDTH = 24


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    title: str
    description: str
    queries: list[Query]
    unit: str = units.Short
    kind: str = "timeseries"
    width: int = 12
    threshold: float | None = None
    mappings: dict[str, str] = field(default_factory=dict)
    stacked: bool = False


def q(expr: str, legend: str = "") -> Query:
    return Query(expr=" ".join(expr.split()), legend=legend)


def quantiles(metric: str, by: str, label: str) -> list[Query]:
    """p50 and p99 of a histogram, by one label (``by`` empty: over everything)."""
    group = f"le, {by}" if by else "le"
    return [
        q(
            f"histogram_quantile({quantile}, sum by ({group}) (rate({metric}_bucket[5m])))",
            f"p{round(quantile * 100)} {label}".strip(),
        )
        for quantile in (0.5, 0.99)
    ]


ROWS: list[tuple[str, list[PanelSpec]]] = [
    (
        "Traffic and errors",
        [
            PanelSpec(
                "Requests by route",
                "Requests answered per second, by route template (unmatched: no route).",
                [q("sum by (route) (rate(gateway_http_requests_total[5m]))", "{{route}}")],
                unit=units.RequestsPerSecond,
            ),
            PanelSpec(
                "5xx by route",
                "Requests answered with a 5xx status per second, by route.",
                [q('sum by (route) (rate(gateway_http_requests_total{status_class="5xx"}[5m]))', "{{route}}")],
                unit=units.RequestsPerSecond,
            ),
            PanelSpec(
                "5xx ratio",
                "Share of requests answered with 5xx, health and metrics routes left out. "
                "Alert SeedanceGatewayHighErrorRate fires above 5%.",
                [
                    q(
                        f'sum(rate(gateway_http_requests_total{{status_class="5xx", {PROBES}}}[5m])) '
                        f"/ sum(rate(gateway_http_requests_total{{{PROBES}}}[5m]))",
                        "5xx",
                    )
                ],
                unit=units.PercentUnit,
                threshold=0.05,
            ),
            PanelSpec(
                "Requests by status class",
                "Requests per second by status class (2xx, 4xx, 5xx), health and metrics routes left out.",
                [q(f"sum by (status_class) (rate(gateway_http_requests_total{{{PROBES}}}[5m]))", "{{status_class}}")],
                unit=units.RequestsPerSecond,
                stacked=True,
            ),
            PanelSpec(
                "Rejected before fal",
                "Requests refused before reaching fal, by reason (rate limit, concurrency, budget, policy, ...).",
                [q("sum by (reason) (rate(gateway_requests_rejected_total[5m]))", "{{reason}}")],
                unit=units.RequestsPerSecond,
                width=WIDTH,
            ),
        ],
    ),
    (
        "Latency",
        [
            PanelSpec(
                "Gateway overhead by route",
                "Time the gateway itself adds to each request, apart from waiting on fal, p50 and p99.",
                quantiles("gateway_http_overhead_seconds", "route", "{{route}}"),
                unit=units.Seconds,
            ),
            PanelSpec(
                "Request latency by route",
                "Whole request latency as clients see it, p50 and p99 (long for /run and status streams).",
                quantiles("gateway_http_request_duration_seconds", "route", "{{route}}"),
                unit=units.Seconds,
            ),
        ],
    ),
    (
        "Upstream (fal)",
        [
            PanelSpec(
                "fal latency by operation",
                "Latency of one call to fal (submit, status, result, cancel), p50 and p99.",
                quantiles("gateway_upstream_request_duration_seconds", "op", "{{op}}"),
                unit=units.Seconds,
            ),
            PanelSpec(
                "fal calls by operation and outcome",
                "Calls to fal per second by operation and outcome (HTTP status, timeout or error).",
                [q("sum by (op, outcome) (rate(gateway_upstream_requests_total[5m]))", "{{op}} {{outcome}}")],
                unit=units.RequestsPerSecond,
            ),
            PanelSpec(
                "fal error ratio by operation",
                "Share of calls to fal answered 5xx or 429, timed out or failed in transport. "
                "Alert SeedanceGatewayUpstreamErrors fires above 10%.",
                [
                    q(
                        'sum by (op) (rate(gateway_upstream_requests_total{outcome=~"5..|429|timeout|error"}[5m])) '
                        "/ sum by (op) (rate(gateway_upstream_requests_total[5m]))",
                        "{{op}}",
                    )
                ],
                unit=units.PercentUnit,
                threshold=0.1,
            ),
            PanelSpec(
                "Circuit state by operation",
                "Worst circuit breaker state over the replicas: 0 closed, 1 half-open, 2 open.",
                [q("max by (op) (gateway_upstream_circuit_state)", "{{op}}")],
                mappings={"0": "closed", "1": "half-open", "2": "open"},
            ),
            PanelSpec(
                "Retries to fal by reason",
                "Repeated attempts of calls to fal per second, by operation and reason.",
                [q("sum by (op, reason) (rate(gateway_upstream_retries_total[5m]))", "{{op}} {{reason}}")],
                unit=units.RequestsPerSecond,
                width=WIDTH,
            ),
        ],
    ),
    (
        "Jobs",
        [
            PanelSpec(
                "Jobs in flight by state",
                "Jobs not yet completed, by state (every replica reports the same count: the largest is shown).",
                [q("max by (state) (gateway_jobs_in_flight)", "{{state}}")],
                stacked=True,
            ),
            PanelSpec(
                "Completions by outcome",
                "Jobs completed per second, by endpoint and outcome.",
                [q("sum by (endpoint, outcome) (rate(gateway_jobs_completed_total[5m]))", "{{endpoint}} {{outcome}}")],
                unit=units.OpsPerSecond,
            ),
            PanelSpec(
                "Submissions by endpoint",
                "Jobs accepted and sent to fal per second, by endpoint and mode (queue or run).",
                [q("sum by (endpoint, mode) (rate(gateway_jobs_submitted_total[5m]))", "{{endpoint}} {{mode}}")],
                unit=units.OpsPerSecond,
            ),
            PanelSpec(
                "Tracker lag",
                "How late the tracker picks up due jobs, p50 and p99. Alert SeedanceGatewayTrackerLag fires when p99 "
                "stays above 30 s.",
                quantiles("gateway_tracker_lag_seconds", "", ""),
                unit=units.Seconds,
                threshold=30,
            ),
            PanelSpec(
                "Tracker polls by outcome",
                "Status polls of fal made by the tracker per second, by outcome.",
                [q("sum by (outcome) (rate(gateway_tracker_polls_total[5m]))", "{{outcome}}")],
                unit=units.OpsPerSecond,
            ),
            PanelSpec(
                "Background loop errors",
                "Errors survived by a background loop (tracker, reconciler, event bus, webhooks), per second.",
                [q("sum by (loop) (rate(gateway_background_errors_total[5m]))", "{{loop}}")],
                unit=units.OpsPerSecond,
            ),
            PanelSpec(
                "Upstream ids waiting for Redis",
                "Jobs fal accepted whose id waits in a process for Redis to come back, and ids lost for good.",
                [
                    q("sum(gateway_upstream_ids_pending)", "pending"),
                    q("sum(increase(gateway_upstream_ids_lost_total[1h]))", "lost in the last hour"),
                ],
                width=WIDTH,
            ),
        ],
    ),
    (
        "Spend and budgets",
        [
            PanelSpec(
                "Spend per tenant (last hour)",
                "Settled charges per tenant over the last hour, in dollars.",
                [q(f"sum by (tenant) (increase(gateway_charges_micros_total{{{TENANT}}}[1h])) / 1e6", "{{tenant}}")],
                unit=units.Dollars,
            ),
            PanelSpec(
                "Spent and reserved against budget",
                "Settled spend, open reservations and the limit of the current budget period, per tenant, in dollars.",
                [
                    q(f"max by (tenant) (gateway_budget_spent_micros{{{TENANT}}}) / 1e6", "{{tenant}} spent"),
                    q(f"max by (tenant) (gateway_budget_reserved_micros{{{TENANT}}}) / 1e6", "{{tenant}} reserved"),
                    q(f"max by (tenant) (gateway_budget_limit_micros{{{TENANT}}}) / 1e6", "{{tenant}} limit"),
                ],
                unit=units.Dollars,
            ),
            PanelSpec(
                "Budget used",
                "(Spent + reserved) / limit of the current period, per tenant with a budget. "
                "Alert SeedanceGatewayTenantBudgetNearlySpent fires above 90%.",
                [
                    q(
                        f"max by (tenant) ((gateway_budget_spent_micros{{{TENANT}}} "
                        f"+ gateway_budget_reserved_micros{{{TENANT}}}) "
                        f"/ (gateway_budget_limit_micros{{{TENANT}}} > 0))",
                        "{{tenant}}",
                    )
                ],
                unit=units.PercentUnit,
                threshold=0.9,
            ),
            PanelSpec(
                "Refused for budget (402)",
                "Requests refused with 402 per second, per tenant.",
                [q(f"sum by (tenant) (rate(gateway_budget_rejections_total{{{TENANT}}}[5m]))", "{{tenant}}")],
                unit=units.RequestsPerSecond,
            ),
        ],
    ),
    (
        "Cache",
        [
            PanelSpec(
                "Cache hit ratio",
                "Share of cacheable requests answered without a new fal job: a hit, or merged into an identical "
                "request in flight (follow).",
                [
                    q(
                        'sum(rate(gateway_cache_lookups_total{outcome=~"hit|follow"}[5m])) '
                        "/ sum(rate(gateway_cache_lookups_total[5m]))",
                        "hit ratio",
                    )
                ],
                unit=units.PercentUnit,
            ),
            PanelSpec(
                "Cache lookups by outcome",
                "Cacheable requests per second by outcome (hit, follow, lead, miss), and requests that bypassed it.",
                [
                    q("sum by (outcome) (rate(gateway_cache_lookups_total[5m]))", "{{outcome}}"),
                    q("sum(rate(gateway_cache_bypasses_total[5m]))", "bypass"),
                ],
                unit=units.RequestsPerSecond,
                stacked=True,
            ),
            PanelSpec(
                "Saved by the cache (last hour)",
                "Estimated cost of requests answered by a hit or a merged follower over the last hour, per tenant.",
                [
                    q(
                        f"sum by (tenant) (increase(gateway_cache_saved_micros_total{{{TENANT}}}[1h])) / 1e6",
                        "{{tenant}}",
                    )
                ],
                unit=units.Dollars,
            ),
            PanelSpec(
                "Saved in the time range",
                "Estimated cost saved by the cache over the dashboard's time range, selected tenants.",
                [q(f"sum(increase(gateway_cache_saved_micros_total{{{TENANT}}}[$__range])) / 1e6", "saved")],
                unit=units.Dollars,
                kind="stat",
            ),
        ],
    ),
    (
        "Webhooks",
        [
            PanelSpec(
                "Deliveries by outcome",
                "Webhook deliveries that ended per second: delivered, or failed after the last attempt.",
                [q("sum by (outcome) (rate(gateway_webhook_deliveries_total[5m]))", "{{outcome}}")],
                unit=units.OpsPerSecond,
            ),
            PanelSpec(
                "Attempts by result",
                "Delivery attempts per second by result (2xx, 4xx, 5xx, network_error, refused).",
                [q("sum by (result) (rate(gateway_webhook_attempts_total[5m]))", "{{result}}")],
                unit=units.OpsPerSecond,
                stacked=True,
            ),
            PanelSpec(
                "Queue depth",
                "Deliveries pending, due now or waiting for a retry.",
                [q("max(gateway_webhook_queue_depth)", "pending")],
            ),
            PanelSpec(
                "Oldest pending delivery",
                "How overdue the most overdue pending delivery is. Alert SeedanceGatewayWebhookBacklog fires above "
                "10 minutes.",
                [q("max(gateway_webhook_oldest_pending_seconds)", "overdue")],
                unit=units.Seconds,
                threshold=600,
            ),
            PanelSpec(
                "Dead letters (15 min)",
                "Deliveries that used every attempt or were refused, over the last 15 minutes.",
                [q("sum(increase(gateway_webhook_dead_letters_total[15m]))", "dead-lettered")],
                threshold=1,
            ),
            PanelSpec(
                "Delivery latency",
                "From a job's completion to its webhook's successful delivery, p50 and p99.",
                quantiles("gateway_webhook_delivery_latency_seconds", "", ""),
                unit=units.Seconds,
            ),
        ],
    ),
    (
        "Redis",
        [
            PanelSpec(
                "Redis reachable",
                "1 when the process reaches Redis, 0 when it does not (then it answers 503 and is not ready).",
                [q("min by (instance) (gateway_redis_up)", "{{instance}}")],
                mappings={"0": "down", "1": "up"},
            ),
            PanelSpec(
                "Redis command latency by command",
                "Latency of Redis commands as the gateway sees them, p50 and p99, by command.",
                quantiles("gateway_redis_command_duration_seconds", "command", "{{command}}"),
                unit=units.Seconds,
            ),
        ],
    ),
]


def panel(spec: PanelSpec, panel_id: int) -> timeseries.Panel | stat.Panel:
    built = timeseries.Panel() if spec.kind == "timeseries" else stat.Panel()
    built = (
        built.id(panel_id)
        .title(spec.title)
        .description(spec.description)
        .datasource(DATASOURCE)
        .unit(spec.unit)
        .span(spec.width)
        .height(8)
    )
    for index, query in enumerate(spec.queries):
        target = prometheus.Dataquery().expr(query.expr).ref_id(chr(ord("A") + index)).datasource(DATASOURCE)
        built = built.with_target(target.legend_format(query.legend) if query.legend else target)
    if spec.threshold is not None:
        steps = [Threshold(value=None, color="green"), Threshold(value=spec.threshold, color="red")]
        built = built.thresholds(dashboard.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps))
    if spec.mappings:
        options = {value: ValueMappingResult(text=text) for value, text in spec.mappings.items()}
        built = built.mappings([ValueMap(options=options)])
    if isinstance(built, timeseries.Panel):
        built = built.fill_opacity(10).line_width(1)
        if spec.stacked:
            built = built.stacking(common.StackingConfig().mode(StackingMode.NORMAL))
    return built


def build() -> dict[str, object]:
    board = (
        dashboard.Dashboard("seedance-gateway")
        .uid(UID)
        .description("Traffic, latency, fal, jobs, spend, cache, webhooks and Redis of seedance-gateway.")
        .tags(["seedance-gateway"])
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        )
        .with_variable(
            dashboard.QueryVariable("tenant")
            .label("Tenant")
            .datasource(DATASOURCE)
            .query("label_values(gateway_budget_spent_micros, tenant)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*"),
        )
    )
    panel_id = 0
    for title, specs in ROWS:
        panel_id += 1
        board = board.with_row(dashboard.Row(title).id(panel_id))
        for spec in specs:
            panel_id += 1
            board = board.with_panel(panel(spec, panel_id))
    encoded: dict[str, object] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return encoded


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed JSON is not what this writes")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"default: {OUTPUT.name} beside this script")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current == text:
            return 0
        diff = difflib.unified_diff(current.splitlines(), text.splitlines(), str(args.output), "generated", lineterm="")
        sys.stderr.write("\n".join(list(diff)[:60]) + "\n")
        sys.stderr.write(f"{args.output} is out of date: run `uv run deploy/grafana/generate.py`\n")
        return 1
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
