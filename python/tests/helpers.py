import asyncio
import logging
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE_VLLM = os.path.join(HERE, "fake_vllm")
if FAKE_VLLM not in sys.path:
    sys.path.insert(0, FAKE_VLLM)

from kvroute_vllm import protocol as p  # noqa: E402

# The worker logs refused connections as warnings; the tests check them through the frames instead.
logging.getLogger("kvroute_vllm").setLevel(logging.CRITICAL)


class RawClient:
    """A minimal router side over real TCP, speaking frames directly."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port, hello=True, **hello_fields):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        if hello:
            client.send({"type": "hello", "protocol": 1, "client": "test", **hello_fields})
        return client

    def send(self, message):
        self.writer.write(p.encode_frame(message))

    def send_raw(self, data):
        self.writer.write(data)

    async def recv(self, timeout=5):
        header = await asyncio.wait_for(self.reader.readexactly(4), timeout)
        body = await asyncio.wait_for(self.reader.readexactly(int.from_bytes(header, "big")), timeout)
        return p.decode_body(body)

    async def until_closed(self, timeout=5):
        """Frames received until the engine closes the connection."""
        frames = []
        while True:
            try:
                frames.append(await self.recv(timeout))
            except (asyncio.IncompleteReadError, ConnectionError):
                return frames

    async def stream(self, request_id, timeout=5):
        """Frames for one request up to its finish or error (skipping heartbeats and other ids)."""
        frames = []
        while True:
            frame = await self.recv(timeout)
            if frame.get("id") != request_id:
                continue
            frames.append(frame)
            if frame["type"] in ("finish", "error"):
                return frames

    def close(self):
        self.writer.close()


class WorkerCase:
    """Mix-in for IsolatedAsyncioTestCase: a worker built from command-line arguments, exactly as
    `python -m kvroute_vllm` builds it, in front of the fake AsyncLLM, on a real TCP port."""

    async def start_worker(self, args, lora_modules=None, max_frame_bytes=64 * 1024):
        from kvroute_vllm.main import own_parser, vllm_engine_args
        from kvroute_vllm.server import EngineServer
        from kvroute_vllm.vllm_engine import VllmEngine, build_async_llm

        ours, rest = own_parser().parse_known_args(["--port", "0", *args])
        self.engine_args = vllm_engine_args(rest, ours)
        self.llm = build_async_llm(self.engine_args)
        self.engine = VllmEngine(
            self.llm, engine_id="worker-test", lora_modules=lora_modules, kv_events_endpoint=self.engine_args.kvroute_kv_events_endpoint
        )
        self.server = EngineServer(self.engine, max_frame_bytes=max_frame_bytes)
        self.port = await self.server.start("127.0.0.1", 0)
        self.clients = []
        self.addAsyncCleanup(self._stop_worker)

    async def _stop_worker(self):
        for client in self.clients:
            client.close()
        await self.server.close()

    async def client(self, **hello):
        client = await RawClient.connect(self.port, **hello)
        self.clients.append(client)
        return client

    async def ready(self, **hello):
        client = await self.client(**hello)
        welcome = await client.recv()
        self.assertEqual(welcome["type"], "welcome")
        return client, welcome

    async def run_request(self, message):
        """Sends one generate on a fresh connection; its frames up to the finish or error."""
        client, _ = await self.ready()
        client.send({"type": "generate", "id": 1, **message})
        return await client.stream(1)


def prompt(n, salt=0):
    return [(i * 7919 + salt * 104729) % 150_000 for i in range(n)]
