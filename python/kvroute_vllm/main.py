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
--max-model-len, --tensor-parallel-size, --gpu-memory-utilization. Prefix caching and vLLM's ZMQ
KV-event publisher are always turned on; --kv-events-config, if given, is kept and only switched on.
A tcp KV-event endpoint is bound on every interface (vLLM connects instead of binding unless the host
is a wildcard) and announced to the router as given.
"""

WILDCARD_HOSTS = ("*", "0.0.0.0", "::", "[::]")


def bindable_endpoint(endpoint: str) -> str:
    """The endpoint with a wildcard host, for a tcp endpoint: vLLM binds its PUB socket only when the
    endpoint holds "*" or "::" (or is ipc or inproc), and connects to it otherwise
    (vllm/distributed/kv_events.py)."""
    if not endpoint.startswith("tcp://"):
        return endpoint
    host, sep, port = endpoint[len("tcp://"):].rpartition(":")
    if not sep or not host:
        raise SystemExit(f"a tcp KV-event endpoint must look like tcp://HOST:PORT, not {endpoint!r}")
    return f"tcp://*:{port}"


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
    parser.add_argument(
        "--block-size", type=int, default=16, help="tokens per KV block, always passed to vLLM (default 16, the router's default)"
    )
    parser.add_argument(
        "--kv-events-endpoint",
        default="tcp://*:5557",
        help="ZMQ PUB endpoint for KV events, announced to the router as given (default tcp://*:5557; rank r uses port + r)",
    )
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
    """vLLM's AsyncEngineArgs from the remaining arguments, with the block size set, prefix caching and KV
    events on, and a tcp KV-event endpoint made bindable. The endpoint to announce is kept in
    `kvroute_kv_events_endpoint`."""
    from vllm.config import KVEventsConfig
    from vllm.engine.arg_utils import AsyncEngineArgs

    try:
        from vllm.utils.argparse_utils import FlexibleArgumentParser
    except ImportError:
        from vllm.utils import FlexibleArgumentParser

    if ours.block_size < 1:
        raise SystemExit(f"--block-size must be a positive integer, not {ours.block_size}")
    parser = FlexibleArgumentParser(prog="python -m kvroute_vllm")
    AsyncEngineArgs.add_cli_args(parser)
    args = AsyncEngineArgs.from_cli_args(parser.parse_args(rest))
    # Left unset, the platform or the attention backend picks a block size inside vLLM's worker processes,
    # which the front end (and so the handshake) may never learn.
    args.block_size = ours.block_size
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
    kv = args.kv_events_config
    args.kvroute_kv_events_endpoint = kv.endpoint
    kv.endpoint = bindable_endpoint(kv.endpoint)
    if ours.lora_module:
        args.enable_lora = True
    return args


async def serve(ours: argparse.Namespace, rest: list) -> int:
    from .server import EngineServer
    from .vllm_engine import UnsupportedModel, VllmEngine, build_async_llm

    lora_modules = parse_lora_modules(ours.lora_module)
    engine_args = vllm_engine_args(rest, ours)
    try:
        async_llm = build_async_llm(engine_args)
    except UnsupportedModel as error:
        log.error("%s", error)
        return 2
    engine = VllmEngine(async_llm, engine_id=ours.engine_id, lora_modules=lora_modules, kv_events_endpoint=engine_args.kvroute_kv_events_endpoint)
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
