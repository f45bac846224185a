# ruff: noqa: INP001 - a helper script of .ci/deploy-checks, run by the tools' own Python, not an importable module
"""Checks of the deployment artefacts that need more than a tool's exit code; called by .ci/deploy-checks with the
Python of its private tool environment (PyYAML and kubernetes-validate installed there).

    deploy_checks.py manifests ALERTS_YAML RENDERED.yaml...   validate rendered Helm output
    deploy_checks.py dashboard-rules DASHBOARD.json OUT.yaml   every panel's PromQL as a recording rule, for promtool
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # no py.typed
import yaml

KUBERNETES_VERSION = "1.33.0"
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
DRAIN_SECONDS = 15  # service/server.py GRACEFUL_SHUTDOWN_SECONDS
TMP_MOUNT = "/tmp"  # noqa: S108 - where the pods mount their emptyDir, not a file this script writes
# Grafana's own variables that may stand where PromQL wants a duration; label values like "$tenant" parse as they are.
GRAFANA_DURATIONS = re.compile(r"\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}")


class CheckError(Exception):
    pass


def main(argv: list[str]) -> int:
    try:
        if len(argv) >= 3 and argv[0] == "manifests":
            alerts = yaml.safe_load(Path(argv[1]).read_text(encoding="utf-8"))
            for name in argv[2:]:
                sys.stdout.write(f"{check_manifests(Path(name), alerts)}\n")
            return 0
        if len(argv) == 3 and argv[0] == "dashboard-rules":
            count = write_dashboard_rules(Path(argv[1]), Path(argv[2]))
            sys.stdout.write(f"{count} dashboard expressions written as recording rules\n")
            return 0
    except CheckError as exc:
        sys.stderr.write(f"FAILED: {exc}\n")
        return 1
    sys.stderr.write(__doc__ or "")
    return 2


# --- rendered manifests -------------------------------------------------------------------------------------------


def check_manifests(path: Path, alerts: dict[str, Any]) -> str:
    docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    if not docs:
        raise CheckError(f"{path}: nothing rendered")
    for doc in docs:
        where = f"{path}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if doc.get("kind") in CRD_KINDS:
            _check_crd(doc, where, docs, alerts)
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise CheckError(f"{where}: {exc.message} at {'.'.join(str(p) for p in exc.path)}") from None
        if doc["kind"] == "Deployment":
            _check_deployment(doc, where)
    _check_references(docs, path)
    kinds = sorted({str(doc["kind"]) for doc in docs})
    return f"{path.name}: {len(docs)} objects valid for Kubernetes {KUBERNETES_VERSION} ({', '.join(kinds)})"


def _check_crd(doc: dict[str, Any], where: str, docs: list[dict[str, Any]], alerts: dict[str, Any]) -> None:
    """The CRDs are not in kubernetes-validate's bundle: their required structure, and what they point at."""
    _require(doc.get("apiVersion") == "monitoring.coreos.com/v1", where, "apiVersion must be monitoring.coreos.com/v1")
    _require(bool(doc.get("metadata", {}).get("name")), where, "metadata.name is required")
    _require(isinstance(doc.get("spec"), dict), where, "spec must be an object")
    spec: dict[str, Any] = doc["spec"]
    if doc["kind"] == "ServiceMonitor":
        selector = spec.get("selector", {}).get("matchLabels")
        _require(isinstance(selector, dict) and bool(selector), where, "spec.selector.matchLabels is required")
        endpoints: list[dict[str, Any]] = spec.get("endpoints") or []
        _require(isinstance(endpoints, list) and bool(endpoints), where, "spec.endpoints must be a non-empty list")
        services = [d for d in docs if d["kind"] == "Service" and _matches(selector, d["metadata"].get("labels", {}))]
        _require(bool(services), where, "the selector matches no rendered Service")
        for endpoint in endpoints:
            _require(isinstance(endpoint.get("port"), str), where, "each endpoint needs a port name")
            _require(str(endpoint.get("path", "/metrics")).startswith("/"), where, "an endpoint path starts with /")
            for service in services:
                names = {port.get("name") for port in service["spec"]["ports"]}
                _require(
                    endpoint["port"] in names,
                    where,
                    f"Service {service['metadata']['name']} has no port named {endpoint['port']}",
                )
    else:
        groups: list[dict[str, Any]] = spec.get("groups") or []
        _require(isinstance(groups, list) and bool(groups), where, "spec.groups must be a non-empty list")
        for group in groups:
            _require(
                bool(group.get("name")) and isinstance(group.get("rules"), list),
                where,
                "a group needs a name and rules",
            )
            for rule in group["rules"]:
                _require(("alert" in rule) != ("record" in rule), where, "a rule is an alert or a record")
                _require(bool(rule.get("expr")), where, "a rule needs an expr")
        _require(groups == alerts.get("groups"), where, "spec.groups differ from the chart's files/alerts.yaml")


def _check_deployment(doc: dict[str, Any], where: str) -> None:
    """What Kubernetes' schema cannot say: the selector selects the pods, and the pods are locked down."""
    pod = doc["spec"]["template"]
    _require(
        _matches(doc["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"]),
        where,
        "the selector does not match the pod template's labels",
    )
    spec = pod["spec"]
    pod_security = spec.get("securityContext", {})
    _require(pod_security.get("runAsNonRoot") is True, where, "pod securityContext.runAsNonRoot must be true")
    _require(
        pod_security.get("seccompProfile", {}).get("type") == "RuntimeDefault",
        where,
        "pod seccompProfile must be RuntimeDefault",
    )
    mounts_tmp = any(v["name"] == "tmp" and "emptyDir" in v for v in spec.get("volumes", []))
    _require(mounts_tmp, where, "an emptyDir volume named tmp is required (read-only root filesystem)")
    for container in spec["containers"]:
        security = container.get("securityContext", {})
        _require(security.get("readOnlyRootFilesystem") is True, where, "readOnlyRootFilesystem must be true")
        _require(security.get("allowPrivilegeEscalation") is False, where, "allowPrivilegeEscalation must be false")
        _require(security.get("capabilities", {}).get("drop") == ["ALL"], where, "capabilities must drop ALL")
        _require(security.get("runAsUser") == 10001, where, "runAsUser must be 10001 (the image's user)")
        _require(
            any(m["mountPath"] == TMP_MOUNT for m in container.get("volumeMounts", [])), where, "no emptyDir at /tmp"
        )
        _require(container["livenessProbe"]["httpGet"]["path"] == "/healthz", where, "liveness must ask /healthz")
        _require(container["readinessProbe"]["httpGet"]["path"] == "/readyz", where, "readiness must ask /readyz")
        command = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        _require(len(command) == 2 and command[0] == "sleep", where, "preStop must sleep")
        grace = spec.get("terminationGracePeriodSeconds", 30)
        _require(
            grace >= int(command[1]) + DRAIN_SECONDS,
            where,
            "terminationGracePeriodSeconds is shorter than the preStop sleep plus the gateway's drain",
        )


def _check_references(docs: list[dict[str, Any]], path: Path) -> None:
    """Services, HPAs and PDBs point at Deployments of the same render."""
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d in deployments.values()]
    for doc in docs:
        where = f"{path}: {doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] == "Service":
            _require(any(_matches(doc["spec"]["selector"], labels) for labels in pod_labels), where, "selects no pods")
        elif doc["kind"] == "PodDisruptionBudget":
            selector = doc["spec"]["selector"]["matchLabels"]
            _require(any(_matches(selector, labels) for labels in pod_labels), where, "selects no pods")
        elif doc["kind"] == "HorizontalPodAutoscaler":
            _require(doc["spec"]["scaleTargetRef"]["name"] in deployments, where, "scales no rendered Deployment")
            _require(
                "replicas" not in deployments[doc["spec"]["scaleTargetRef"]["name"]]["spec"],
                where,
                "an autoscaled Deployment must not set replicas",
            )


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _require(condition: bool, where: str, message: str) -> None:
    if not condition:
        raise CheckError(f"{where}: {message}")


# --- dashboard expressions ----------------------------------------------------------------------------------------


def write_dashboard_rules(dashboard: Path, out: Path) -> int:
    """Each target's expr as a recording rule, so that `promtool check rules` parses every one of them."""
    board = json.loads(dashboard.read_text(encoding="utf-8"))
    rules: list[dict[str, str]] = []
    for title, expr in _expressions(board.get("panels", [])):
        if not expr.strip():
            raise CheckError(f"{dashboard}: panel {title!r} has an empty expr")
        rules.append({"record": f"dashboard:panel_{len(rules)}", "expr": GRAFANA_DURATIONS.sub("5m", expr)})
    if not rules:
        raise CheckError(f"{dashboard}: no expressions found")
    out.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, sort_keys=False), "utf-8")
    return len(rules)


def _expressions(panels: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    for panel in panels:
        if panel.get("type") == "row":
            yield from _expressions(panel.get("panels", []))
            continue
        targets = panel.get("targets") or []
        if not targets:
            raise CheckError(f"panel {panel.get('title')!r} has no query")
        for target in targets:
            yield str(panel.get("title")), str(target.get("expr", ""))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
