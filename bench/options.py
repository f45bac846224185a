"""Command-line options shared by ``python -m bench`` and ``python -m bench.soak``."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.processes import StackOptions

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("expected positive integers")
    return values


def env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return name, value


def add_stack_options(parser: argparse.ArgumentParser) -> None:
    """The options of the processes the bench starts."""
    parser.add_argument("--redis-url", help="use this Redis database (it is flushed) instead of an embedded server")
    parser.add_argument("--gateway-workers", type=int, metavar="N", help="`serve --workers N`, if serve has it")
    parser.add_argument(
        "--gateway-env", type=env_pair, action="append", default=[], metavar="KEY=VALUE", help="extra gateway env"
    )
    parser.add_argument(
        "--sim-access-log",
        action="store_true",
        help="run the project's own `simulator` command (uvicorn access log on) instead of bench.simserver",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR", help="where results are written")


def stack_options(args: argparse.Namespace, **timing: float) -> StackOptions:
    return StackOptions(
        redis_url=args.redis_url,
        gateway_workers=args.gateway_workers,
        gateway_env=dict(args.gateway_env),
        sim_access_log=args.sim_access_log,
        **timing,
    )
