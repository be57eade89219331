"""`python -m kvroute_vllm --model M --port P [any vLLM engine argument]`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from typing import Any, Optional

from . import protocol as p

log = logging.getLogger("kvroute_vllm")

USAGE_TAIL = """
Every other argument is one of vLLM's engine arguments (see `vllm serve --help`), e.g. --model,
--block-size, --max-model-len, --tensor-parallel-size, --gpu-memory-utilization. Prefix caching and
vLLM's ZMQ KV-event publisher are always turned on; --kv-events-config, if given, is kept and only
switched on.
"""


def own_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kvroute_vllm",
        description="Serve vLLM over kvroute's engine protocol.",
        epilog=USAGE_TAIL,
        add_help=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-h", "--help", action="store_true", help="show this help and exit")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, required=False, help="engine-protocol TCP port (0: any free port)")
    parser.add_argument("--engine-id", help="this engine's name in the handshake (default: the host name)")
    parser.add_argument("--kv-events-endpoint", default="tcp://*:5557", help="ZMQ PUB endpoint for KV events (default tcp://*:5557)")
    parser.add_argument("--kv-events-replay-endpoint", default=None, help="ZMQ ROUTER endpoint for KV-event replay (default: none)")
    parser.add_argument("--kv-events-topic", default="", help='ZMQ topic (default "")')
    parser.add_argument(
        "--lora-module", action="append", default=[], metavar="NAME=PATH", help="a LoRA adapter requests may name (repeatable)"
    )
    parser.add_argument("--max-frame-bytes", type=int, default=p.DEFAULT_MAX_FRAME_BYTES, help="largest protocol frame accepted")
    parser.add_argument("--log-level", default="INFO", help="Python logging level (default INFO)")
    return parser


def parse_lora_modules(items: list) -> dict:
    modules = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--lora-module must look like NAME=PATH, not {item!r}")
        modules[name] = path
    return modules


def vllm_engine_args(rest: list, ours: argparse.Namespace) -> Any:
    """vLLM's AsyncEngineArgs from the remaining arguments, with prefix caching and KV events on."""
    from vllm.config import KVEventsConfig
    from vllm.engine.arg_utils import AsyncEngineArgs

    try:
        from vllm.utils.argparse_utils import FlexibleArgumentParser
    except ImportError:
        from vllm.utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(prog="python -m kvroute_vllm")
    AsyncEngineArgs.add_cli_args(parser)
    args = AsyncEngineArgs.from_cli_args(parser.parse_args(rest))
    args.enable_prefix_caching = True
    if args.kv_events_config is None:
        args.kv_events_config = KVEventsConfig(
            enable_kv_cache_events=True,
            publisher="zmq",
            endpoint=ours.kv_events_endpoint,
            replay_endpoint=ours.kv_events_replay_endpoint,
            topic=ours.kv_events_topic,
        )
    else:
        args.kv_events_config.enable_kv_cache_events = True
        if args.kv_events_config.publisher in (None, "null"):
            args.kv_events_config.publisher = "zmq"
    if ours.lora_module:
        args.enable_lora = True
    return args


async def serve(ours: argparse.Namespace, rest: list) -> int:
    from .server import EngineServer
    from .vllm_engine import VllmEngine, build_async_llm

    lora_modules = parse_lora_modules(ours.lora_module)
    async_llm = build_async_llm(vllm_engine_args(rest, ours))
    engine = VllmEngine(async_llm, engine_id=ours.engine_id, lora_modules=lora_modules)
    server = EngineServer(engine, max_frame_bytes=ours.max_frame_bytes)
    try:
        port = await server.start(ours.host, ours.port)
        info = engine.info()
        print(json.dumps({"url": f"tcp://{ours.host}:{port}", "model": info["model"], "block_size": info["block_size"], "num_blocks": info["num_blocks"], "kv_events": info["kv_events"]}), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await server.close()
        async_llm.shutdown()
    return 0


def main(argv: Optional[list] = None) -> int:
    parser = own_parser()
    ours, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if ours.help:
        parser.print_help()
        return 0
    if ours.port is None:
        parser.error("--port is required")
    logging.basicConfig(level=ours.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    return asyncio.run(serve(ours, rest))
