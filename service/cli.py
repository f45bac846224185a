"""The ``seedance-gateway`` command: ``serve``, ``worker``, ``simulator``, ``dev`` (the quick start), ``openapi``,
and the operator commands ``tenants``, ``keys`` and ``webhooks``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from prometheus_client import start_http_server
from pydantic import ValidationError

from service.admin_cli import register as register_admin_commands
from service.app import create_app
from service.config import Settings
from service.logging import configure_logging
from service.metrics import Metrics
from service.outbound import webhook_policy
from service.server import run_server
from service.webhooks.signing import parse_signing_keys
from service.workers import supervise


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "handler", None):  # the operator commands (tenants, keys)
        return int(args.handler(args))
    try:
        if args.command == "simulator":
            return _simulator(args)
        if args.command == "openapi":
            from service.openapi import render_openapi  # noqa: PLC0415 - builds the whole app; only here

            sys.stdout.write(render_openapi())
            return 0
        if args.command == "dev":
            from service.devserver import run_dev  # noqa: PLC0415 - dev-only imports stay out of serve

            return run_dev(state_dir=args.state_dir, tls=not args.no_tls)
        settings = Settings()
    except ValidationError as exc:
        print(f"seedance-gateway: invalid configuration:\n{exc}", file=sys.stderr)  # noqa: T201
        return 2
    return _serve(args, settings, list(sys.argv[1:] if argv is None else argv))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seedance-gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="Run the gateway (API + job tracker) from GATEWAY_* settings")
    serve.add_argument(
        "--simulator", action="store_true", help="Use the built-in fal simulator as upstream (never in production)"
    )
    serve.add_argument(
        "--workers", type=int, default=None, help="Processes sharing the port (default GATEWAY_WORKERS, 1)"
    )
    serve.add_argument("--shared-port", action="store_true", help=argparse.SUPPRESS)  # a worker of --workers
    serve.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    sub.add_parser("worker", help="Run only the job tracker (plus /healthz, /readyz, /metrics)")
    sim = sub.add_parser("simulator", help="Run the fal queue simulator on its own")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=9090)
    sim.add_argument("--queue-seconds", type=float, default=1.0)
    sim.add_argument("--processing-seconds", type=float, default=4.0)
    sim.add_argument("--fal-key", default=None, help="Require exactly this key from callers")
    sim.add_argument("--media-base-url", default=None)
    dev = sub.add_parser("dev", help="Quick start: embedded Redis, simulator upstream, TLS and a demo tenant")
    dev.add_argument("--state-dir", default=".seedance-dev", help="Where the dev CA and certificate are written")
    dev.add_argument("--no-tls", action="store_true", help="Serve plain HTTP (fal_client needs TLS)")
    sub.add_parser("openapi", help="Print the gateway's OpenAPI document (JSON)")
    register_admin_commands(sub)
    return parser


def _serve(args: argparse.Namespace, settings: Settings, argv: list[str]) -> int:
    """``serve`` and ``worker``: validate the configuration, then run until stopped (``--workers``: supervise)."""
    worker = args.command == "worker"
    if not worker:
        updates: dict[str, object] = {"simulator": True} if args.simulator else {}
        if args.workers is not None:
            updates["workers"] = args.workers
        settings = settings.model_copy(update=updates)
    problem = _serve_problem(settings)
    if problem:
        print(f"seedance-gateway: {problem}", file=sys.stderr)  # noqa: T201
        return 2
    configure_logging(settings)
    shared_port = not worker and args.shared_port
    if not worker and settings.workers > 1 and not shared_port:
        return supervise(argv, settings.workers)
    if worker:
        settings = settings.model_copy(update={"tracker_enabled": True})
    metrics = Metrics()
    if settings.metrics_port is not None:
        port = settings.metrics_port + (0 if worker else args.worker_index)
        start_http_server(port, addr=settings.host, registry=metrics.registry)
    run_server(create_app(settings, serve_api=not worker, metrics=metrics), settings, shared_port=shared_port)
    return 0


def _serve_problem(settings: Settings) -> str | None:
    if not settings.redis_url:
        return "GATEWAY_REDIS_URL is required"
    if settings.fal_webhooks and not settings.public_url:
        return "GATEWAY_FAL_WEBHOOKS needs GATEWAY_PUBLIC_URL: the address fal calls the gateway back at"
    try:
        webhook_policy(settings)
        if settings.webhook_signing_keys is not None:
            parse_signing_keys(settings.webhook_signing_keys.get_secret_value())
    except ValueError as exc:
        return f"invalid webhook configuration: {exc}"
    if settings.workers > 1 and settings.simulator:
        return "--workers needs a real upstream: each worker would run its own built-in simulator"
    if not settings.simulator and settings.fal_key is None:
        return (
            "GATEWAY_FAL_KEY is required; to run against the built-in simulator instead, choose it explicitly "
            "with --simulator or GATEWAY_SIMULATOR=true"
        )
    return None


def _simulator(args: argparse.Namespace) -> int:
    from service.simulator.app import SimulatorConfig, serve_simulator  # noqa: PLC0415

    config = SimulatorConfig(
        queue_seconds=args.queue_seconds,
        processing_seconds=args.processing_seconds,
        fal_key=args.fal_key,
        media_base_url=args.media_base_url,
    )
    serve_simulator(args.host, args.port, config)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
