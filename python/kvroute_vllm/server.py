"""The engine side of the protocol on asyncio: connections, the handshake, and one task per request."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass
from typing import AsyncIterator, Optional, Protocol, Union

from . import protocol as p

log = logging.getLogger("kvroute_vllm")

# Past this many bytes waiting in the socket's buffer a request's task waits for it to drain; with
# vLLM's DELTA outputs, what it produces meanwhile is merged into the next delta.
WRITE_HIGH_WATER = 256 * 1024


@dataclass
class Delta:
    token_ids: list
    text: str
    logprobs: Optional[list] = None


@dataclass
class Finish:
    finish_reason: str
    stop_reason: Union[str, int, None]
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: Optional[int]
    kv_transfer_params: Optional[dict] = None


class RequestFailed(Exception):
    """A request the engine refused or could not finish; `code` is the protocol's error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class EngineDead(Exception):
    """The engine can serve nothing more: connections are closed so routers go elsewhere."""


class Engine(Protocol):
    def info(self) -> dict:
        """The welcome's fields: engine_id, engine, model, block_size, num_blocks, max_model_len,
        data_parallel_start_rank, data_parallel_local_size, kv_events."""

    def generate(self, request: p.Generate, engine_request_id: str) -> AsyncIterator[Union[Delta, Finish]]:
        """Deltas, then one Finish. Cancelling the iteration must abort the request in the engine."""

    async def abort(self, engine_request_id: str) -> None:
        """Stops a request (already cancelled, so this may be a no-op)."""


class Connection:
    _ids = itertools.count(1)

    def __init__(self, server: "EngineServer", reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.server = server
        self.reader = reader
        self.writer = writer
        self.number = next(Connection._ids)
        peer = writer.get_extra_info("peername")
        self.name = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.tasks: dict[int, asyncio.Task] = {}
        self.closed = False
        self.last_received = time.monotonic()

    def write(self, message: dict) -> None:
        if not self.closed:
            self.writer.write(p.encode_frame(message))

    async def send(self, message: dict) -> None:
        self.write(message)
        transport = self.writer.transport
        if not self.closed and transport is not None and transport.get_write_buffer_size() > WRITE_HIGH_WATER:
            await self.writer.drain()

    def refuse(self, code: str, message: str) -> None:
        """Says why and closes: used where the byte stream or the handshake cannot be trusted."""
        log.warning("connection %s: %s: %s; closing it", self.name, code, message)
        self.write(p.error_message(None, code, message))
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for task in self.tasks.values():
            task.cancel()
        self.tasks.clear()
        self.writer.close()


class EngineServer:
    def __init__(self, engine: Engine, *, max_frame_bytes: int = p.DEFAULT_MAX_FRAME_BYTES):
        self.engine = engine
        self.max_frame_bytes = max_frame_bytes
        self.connections: set[Connection] = set()
        self.server: Optional[asyncio.base_events.Server] = None
        self.dead = False
        self.counters = {"frames_in": 0, "frames_out": 0, "bad_frames": 0, "bad_messages": 0}

    async def start(self, host: str, port: int) -> int:
        self.server = await asyncio.start_server(self._serve, host, port)
        return self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        for connection in list(self.connections):
            connection.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def welcome(self) -> dict:
        return {"type": "welcome", "protocol": p.PROTOCOL_VERSION, "max_frame_bytes": self.max_frame_bytes, **self.engine.info()}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = Connection(self, reader, writer)
        self.connections.add(connection)
        watchdog: Optional[asyncio.Task] = None
        try:
            hello = await self._handshake(connection)
            if hello is None:
                return
            if hello.heartbeat_ms:
                watchdog = asyncio.create_task(self._watch(connection, hello.heartbeat_ms))
            while not connection.closed:
                message = await self._read(connection)
                if message is None:
                    return
                self._handle(connection, message)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if watchdog is not None:
                watchdog.cancel()
            connection.close()
            self.connections.discard(connection)

    async def _read(self, connection: Connection) -> Optional[object]:
        """The next decoded frame, or None after refusing a frame that breaks the stream."""
        header = await connection.reader.readexactly(p.HEADER_BYTES)
        length = int.from_bytes(header, "big")
        if length == 0 or length > self.max_frame_bytes:
            self.counters["bad_frames"] += 1
            code = "frame_too_large" if length else "bad_frame"
            connection.refuse(code, f"received a frame of {length} bytes; the limit is {self.max_frame_bytes}")
            return None
        body = await connection.reader.readexactly(length)
        connection.last_received = time.monotonic()
        self.counters["frames_in"] += 1
        try:
            return p.decode_body(body)
        except ValueError as error:
            self.counters["bad_frames"] += 1
            connection.refuse("bad_frame", str(error))
            return None

    async def _handshake(self, connection: Connection) -> Optional[p.Hello]:
        message = await self._read(connection)
        if message is None:
            return None
        if not isinstance(message, dict) or message.get("type") != "hello":
            kind = message.get("type") if isinstance(message, dict) else type(message).__name__
            connection.refuse("handshake_required", f"the first message must be a hello, not {kind!r}")
            return None
        try:
            hello = p.parse_hello(message)
        except p.ProtocolError as error:
            connection.refuse(error.code, error.message)
            return None
        info = self.engine.info()
        if hello.protocol != p.PROTOCOL_VERSION:
            connection.refuse(
                "version_mismatch",
                f"the router speaks protocol version {hello.protocol}; this engine speaks {p.PROTOCOL_VERSION}",
            )
            return None
        if hello.block_size is not None and hello.block_size != info["block_size"]:
            connection.refuse(
                "block_size_mismatch",
                f"the router hashes blocks of {hello.block_size} tokens; this engine's block size is {info['block_size']}",
            )
            return None
        log.info("connection %s: hello from %s", connection.name, hello.client)
        connection.write(self.welcome())
        return hello

    async def _watch(self, connection: Connection, heartbeat_ms: int) -> None:
        # A router that vanished without closing would otherwise keep its requests generating.
        limit = 3 * heartbeat_ms / 1000
        while not connection.closed:
            await asyncio.sleep(heartbeat_ms / 1000)
            if time.monotonic() - connection.last_received > limit:
                log.warning("connection %s: nothing received for over %.1f s; closing it", connection.name, limit)
                connection.close()

    def _handle(self, connection: Connection, message: object) -> None:
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            self.counters["bad_messages"] += 1
            rid = p.message_id(message) if isinstance(message, dict) else None
            connection.write(p.error_message(rid, "bad_message", "a message must be a map with a string \"type\""))
            return
        kind = message["type"]
        if kind == "generate":
            try:
                request = p.parse_generate(message)
            except p.ProtocolError as error:
                self.counters["bad_messages"] += 1
                connection.write(p.error_message(error.request_id, error.code, error.message))
                return
            if request.id in connection.tasks:
                connection.write(p.error_message(request.id, "duplicate_id", f"request id {request.id} is already in flight on this connection"))
                return
            if self.dead:
                connection.write(p.error_message(request.id, "engine_dead", "the engine has failed and serves no requests"))
                return
            connection.tasks[request.id] = asyncio.create_task(self._run(connection, request))
        elif kind == "abort":
            try:
                rid = p.parse_abort(message)
            except p.ProtocolError as error:
                connection.write(p.error_message(None, error.code, error.message))
                return
            task = connection.tasks.pop(rid, None)
            if task is not None:
                task.cancel()
        elif kind == "heartbeat":
            ts = message.get("ts")
            connection.write({"type": "heartbeat", "ts": ts if isinstance(ts, (int, float)) else 0})
        elif kind == "hello":
            connection.write(p.error_message(None, "bad_message", "the handshake is already done"))
        else:
            self.counters["bad_messages"] += 1
            connection.write(p.error_message(p.message_id(message), "unknown_type", f"unknown message type {kind!r}"))

    async def _run(self, connection: Connection, request: p.Generate) -> None:
        engine_request_id = f"kvroute-{connection.number}-{request.id}"
        aborted = False
        try:
            async for event in self.engine.generate(request, engine_request_id):
                if isinstance(event, Delta):
                    delta = {"type": "delta", "id": request.id, "token_ids": event.token_ids, "text": event.text}
                    if event.logprobs is not None:
                        delta["logprobs"] = event.logprobs
                    await connection.send(delta)
                else:
                    finish = {
                        "type": "finish",
                        "id": request.id,
                        "finish_reason": event.finish_reason,
                        "stop_reason": event.stop_reason,
                        "usage": {
                            "prompt_tokens": event.prompt_tokens,
                            "completion_tokens": event.completion_tokens,
                            "cached_tokens": event.cached_tokens,
                        },
                    }
                    if event.kv_transfer_params is not None:
                        finish["kv_transfer_params"] = event.kv_transfer_params
                    await connection.send(finish)
                self.counters["frames_out"] += 1
        except asyncio.CancelledError:
            aborted = True
            raise
        except RequestFailed as error:
            connection.write(p.error_message(request.id, error.code, error.message))
        except EngineDead as error:
            self.dead = True
            log.error("the engine died: %s; closing every connection", error)
            connection.write(p.error_message(request.id, "engine_dead", str(error)))
            for other in list(self.connections):
                other.close()
        except Exception as error:  # one failed request must not take the connection down
            log.exception("request %s failed", engine_request_id)
            connection.write(p.error_message(request.id, "engine_error", f"{type(error).__name__}: {error}"))
        finally:
            if connection.tasks.get(request.id) is asyncio.current_task():
                del connection.tasks[request.id]
            if aborted:
                await asyncio.shield(self.engine.abort(engine_request_id))
