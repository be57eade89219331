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
