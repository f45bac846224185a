"""``python -m bench.simserver``: the project's fal simulator app, served like ``seedance-gateway simulator`` but with
uvicorn's access log off (that command logs every request at info, which costs the direct runs about a quarter of
their throughput). Same flags as the ``simulator`` command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import uvicorn

from service.simulator.app import SimulatorConfig, SimulatorState, create_simulator_app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.simserver", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument("--queue-seconds", type=float, default=0.0)
    parser.add_argument("--processing-seconds", type=float, default=0.0)
    parser.add_argument("--fal-key", default=None)
    args = parser.parse_args(argv)
    config = SimulatorConfig(
        queue_seconds=args.queue_seconds, processing_seconds=args.processing_seconds, fal_key=args.fal_key
    )
    app = create_simulator_app(SimulatorState(config))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
