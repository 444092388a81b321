"""Command line: run the simulated gateway until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import signal
import sys

from .gateway import SimulatedGateway


def parse_now(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    # A bare timestamp is read as UTC, the project's zone for every stored datetime.
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m backend.ibkr_simulator",
                                     description="Simulated IB Gateway (TWS API) for tests.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=4002, help="API port, 0 picks a free one")
    parser.add_argument("--control-port", type=int, default=4080,
                        help="control API port, 0 picks a free one")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic prices")
    parser.add_argument("--instruments", help="JSON file replacing the bundled instrument list")
    parser.add_argument("--pacing-scale", type=float, default=1.0,
                        help="multiplies the pacing windows (15 s, 2 s, 600 s); 0 disables")
    parser.add_argument("--now", type=parse_now,
                        help="fix the clock at this ISO 8601 instant (default: real time)")
    parser.add_argument("--verbose", action="store_true", help="log every connection and fault")
    return parser


async def serve(args: argparse.Namespace) -> None:
    gateway = SimulatedGateway(seed=args.seed, pacing_scale=args.pacing_scale, now=args.now,
                               instruments=args.instruments, host=args.host, port=args.port,
                               control_port=args.control_port)
    await gateway.start()
    print(f"ibkr-simulator listening api={args.host}:{gateway.port} "
          f"control={args.host}:{gateway.control_port}", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stopping.set)
    try:
        await stopping.wait()
    finally:
        await gateway.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
