"""The deployment artefacts as data: the Grafana dashboard's and the alert rules' PromQL, and the metric names they
use (``referenced_metrics``), for tests that hold them against what the gateway exports.

The metric names are found by a small PromQL tokenizer, not a parser: after string literals, ``{...}`` label
matchers, ``[...]`` ranges, numbers and the label lists of ``by``/``without``/``on``/``ignoring``/``group_*`` are
removed, every remaining identifier that is not a keyword and is not followed by ``(`` (a function or an
aggregation) is a metric name: one followed by ``{`` or ``[``, one standing alone, or one given as a function's
argument. The Grafana dashboard's variable queries (``label_values(metric, label)``) count too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML ships no type hints; types-PyYAML is not a dev dependency

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "seedance-gateway.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yaml"
CHART = REPO / "deploy" / "helm" / "seedance-gateway"
CHART_ALERTS = CHART / "files" / "alerts.yaml"
METRIC_PREFIX = "gateway_"

# Series Prometheus makes itself rather than scraping them from the gateway.
PROMETHEUS_OWN = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS", "ALERTS_FOR_STATE"})

_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "atan2",
        "inf",
        "nan",
    }
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_OFFSET = re.compile(r"\boffset\s+-?\w+")
_NUMBER = re.compile(r"(?<![\w:])(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)")
_IDENTIFIER = re.compile(r"(?<![\w:])([a-zA-Z_:][\w:]*)\s*(\(?)")
_LABEL_VALUES = re.compile(r"label_values\(\s*([a-zA-Z_:][\w:]*)")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
_COUNTER_SUFFIX = "_total"


def metric_names(expr: str) -> set[str]:
    """The metric names one PromQL expression selects, as written (``gateway_x_total``, ``gateway_y_bucket``)."""
    text = _STRING.sub('""', expr)
    text = _GRAFANA_VARIABLE.sub("", text)
    text = _MATCHERS.sub("{}", text)
    text = _RANGE.sub("[]", text)
    text = _LABEL_LIST.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    return {
        name
        for name, call in _IDENTIFIER.findall(text)
        if not call and name not in _KEYWORDS and name.lower() not in _KEYWORDS
    }


def dashboard() -> dict[str, Any]:
    board: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return board


def dashboard_panels(board: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every panel that is not a row, including those inside collapsed rows."""
    return list(_panels((board or dashboard()).get("panels", [])))


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        if panel.get("type") == "row":
            yield from _panels(panel.get("panels", []))
        else:
            yield panel


def dashboard_expressions(board: Mapping[str, Any] | None = None) -> list[str]:
    return [str(t.get("expr", "")) for p in dashboard_panels(board) for t in p.get("targets", [])]


def dashboard_variable_metrics(board: Mapping[str, Any] | None = None) -> set[str]:
    """Metrics named by the dashboard's query variables (``label_values(metric, label)``)."""
    names: set[str] = set()
    for variable in (board or dashboard()).get("templating", {}).get("list", []):
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        if variable.get("type") == "query":
            names.update(_LABEL_VALUES.findall(text))
    return names


def alert_rules(path: Path = ALERTS) -> list[dict[str, Any]]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def all_metric_names() -> set[str]:
    """Every metric name the dashboard and the alerts use, Prometheus' own (``up``) included."""
    names = dashboard_variable_metrics()
    for expr in dashboard_expressions() + [str(rule["expr"]) for rule in alert_rules()]:
        names |= metric_names(expr)
    return names


def referenced_metrics() -> set[str]:
    """The gateway metrics the dashboard and the alerts use, as Prometheus names the series: counters with their
    ``_total``, histograms by ``_bucket`` (or ``_sum``/``_count``), gauges by their name. ``up`` and Prometheus'
    other own series are left out. ``exported`` tells whether a scrape has each of them."""
    return {name for name in all_metric_names() if name.startswith(METRIC_PREFIX)}


def exported(name: str, families: Mapping[str, str]) -> bool:
    """Whether ``name`` (one of ``referenced_metrics``) is exported, given the metric families of a scrape or a
    registry as ``{family name: type}``: ``{f.name: f.type for f in
    prometheus_client.parser.text_string_to_metric_families(text)}``, or the same from ``registry.collect()``.

    prometheus_client names a counter's family without its ``_total`` (the series has it) and a histogram's without
    ``_bucket``/``_sum``/``_count``; a labelled family with no series yet still has its family, so this checks
    families, not samples."""
    if families.get(name) in {"gauge", "untyped", "unknown", "info", "stateset"}:
        return True
    if name.endswith(_COUNTER_SUFFIX) and families.get(name.removesuffix(_COUNTER_SUFFIX)) == "counter":
        return True
    for suffix in _HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if name.endswith(suffix) and families.get(base) in {"histogram", "summary", "gaugehistogram"}:
            return suffix != "_bucket" or families[base] != "summary"
    return False
