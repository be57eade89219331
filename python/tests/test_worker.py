"""The worker's server and vLLM adapter over real TCP, in front of the fake AsyncLLM."""

import asyncio
import unittest

from tests.helpers import WorkerCase, prompt
from vllm.sampling_params import RequestOutputKind

ARGS = ["--model", "fake/model", "--block-size", "16", "--max-model-len", "256", "--num-gpu-blocks-override", "100"]


class WorkerTest(WorkerCase, unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        await self.start_worker(ARGS + ["--kv-events-replay-endpoint", "tcp://*:5558"], lora_modules={"adapter": "/loras/a"})

    async def test_turns_on_prefix_caching_and_kv_events(self):
        self.assertTrue(self.engine_args.enable_prefix_caching)
        kv = self.engine_args.kv_events_config
        self.assertEqual((kv.enable_kv_cache_events, kv.publisher, kv.endpoint, kv.replay_endpoint), (True, "zmq", "tcp://*:5557", "tcp://*:5558"))

    async def test_welcome_describes_the_engine(self):
        _, welcome = await self.ready(block_size=16)
        self.assertEqual(welcome["protocol"], 1)
        self.assertEqual(welcome["engine_id"], "worker-test")
        self.assertEqual(welcome["model"], "fake/model")
        self.assertEqual((welcome["block_size"], welcome["num_blocks"], welcome["max_model_len"]), (16, 100, 256))
        self.assertEqual(welcome["max_frame_bytes"], 64 * 1024)
        self.assertEqual(welcome["kv_events"]["endpoint"], "tcp://*:5557")
        self.assertEqual(welcome["kv_events"]["replay_endpoint"], "tcp://*:5558")
        self.assertEqual(welcome["kv_events"]["data_parallel_size"], 1)
        self.assertTrue(welcome["engine"].startswith("vllm "))

    async def test_streams_deltas_then_finish_with_vllm_cached_tokens(self):
        client, _ = await self.ready()
        tokens = prompt(40)
        client.send({"type": "generate", "id": 1, "prompt_token_ids": tokens, "sampling": {"max_tokens": 3, "seed": 5, "stop": ["zz"]}, "overlap_blocks": 0})
        first = await client.stream(1)
        client.send({"type": "generate", "id": 2, "prompt_token_ids": tokens, "sampling": {"max_tokens": 3}, "overlap_blocks": 2, "cache_salt": None})
        second = await client.stream(2)
        self.assertEqual([f["type"] for f in first], ["delta", "delta", "delta", "finish"])
        self.assertTrue(all(len(f["token_ids"]) == 1 for f in first[:3]), "DELTA outputs carry only new tokens")
        self.assertEqual(first[-1]["usage"], {"prompt_tokens": 40, "completion_tokens": 3, "cached_tokens": 0})
        self.assertEqual(first[-1]["finish_reason"], "length")
        self.assertEqual(second[-1]["usage"]["cached_tokens"], 32)
        call = self.llm.calls[0]
        self.assertEqual(call["prompt"], {"type": "token", "prompt_token_ids": tokens})
        self.assertEqual(call["params"].output_kind, RequestOutputKind.DELTA)
        self.assertEqual((call["params"].max_tokens, call["params"].seed, call["params"].stop), (3, 5, ["zz"]))
        self.assertNotEqual(self.llm.calls[0]["request_id"], self.llm.calls[1]["request_id"])

    async def test_absent_max_tokens_means_up_to_the_context_length(self):
        client, _ = await self.ready()
        client.send({"type": "generate", "id": 1, "prompt_token_ids": prompt(250)})
        frames = await client.stream(1)
        self.assertEqual(frames[-1]["usage"]["completion_tokens"], 6)
        self.assertEqual(self.llm.calls[0]["params"].max_tokens, 6)

    async def test_passes_cache_salt_lora_and_logprobs(self):
        client, _ = await self.ready()
        client.send({"type": "generate", "id": 1, "prompt_token_ids": prompt(20), "sampling": {"max_tokens": 1, "logprobs": 1}, "lora_name": "adapter", "cache_salt": "tenant"})
        frames = await client.stream(1)
        call = self.llm.calls[0]
        self.assertEqual(call["prompt"]["cache_salt"], "tenant")
        self.assertEqual((call["lora"].lora_name, call["lora"].lora_path), ("adapter", "/loras/a"))
        token = frames[0]["token_ids"][0]
        self.assertEqual(frames[0]["logprobs"], [[[token, -0.5], [(token + 1) % 150_000, -1.5]]])

    async def test_refuses_bad_requests_with_their_id(self):
        client, _ = await self.ready()
        client.send({"type": "generate", "id": 1, "prompt_token_ids": "nope"})
        client.send({"type": "generate", "id": 2, "prompt_token_ids": [1], "lora_name": "other"})
        client.send({"type": "generate", "id": 3, "prompt_token_ids": prompt(256)})
        errors = [await client.recv() for _ in range(3)]
        by_id = {e["id"]: e for e in errors}
        self.assertEqual(by_id[1]["code"], "invalid_request")
        self.assertIn("prompt_token_ids", by_id[1]["message"])
        self.assertEqual(by_id[2]["code"], "unknown_lora")
        self.assertIn("adapter", by_id[2]["message"])
        self.assertEqual(by_id[3]["code"], "prompt_too_long")

    async def test_abort_mid_stream_aborts_in_vllm(self):
        self.llm.delay = 0.02
        client, _ = await self.ready()
        client.send({"type": "generate", "id": 1, "prompt_token_ids": prompt(20), "sampling": {"max_tokens": 1000}})
        first = await client.recv()
        self.assertEqual(first["type"], "delta")
        client.send({"type": "abort", "id": 1})
        for _ in range(100):
            if self.llm.aborted:
                break
            await asyncio.sleep(0.01)
        self.assertIn(self.llm.calls[0]["request_id"], self.llm.aborted)
        client.send({"type": "heartbeat", "ts": 42})
        while True:
            frame = await client.recv()
            self.assertNotEqual(frame["type"], "finish")
            if frame["type"] == "heartbeat":
                self.assertEqual(frame["ts"], 42)
                break

    async def test_disconnect_aborts_the_connections_requests(self):
        self.llm.delay = 0.02
        client, _ = await self.ready()
        client.send({"type": "generate", "id": 1, "prompt_token_ids": prompt(20), "sampling": {"max_tokens": 1000}})
        await client.recv()
        client.close()
        for _ in range(100):
            if self.llm.aborted:
                break
            await asyncio.sleep(0.01)
        self.assertIn(self.llm.calls[0]["request_id"], self.llm.aborted)

    async def test_refuses_another_protocol_version_or_block_size(self):
        for hello, code in (({"protocol": 2}, "version_mismatch"), ({"block_size": 32}, "block_size_mismatch")):
            with self.subTest(code=code):
                client = await self.client(hello=False)
                client.send({"type": "hello", "protocol": 1, **hello})
                frames = await client.until_closed()
                self.assertEqual([(f["type"], f["id"], f["code"]) for f in frames], [("error", None, code)])

    async def test_hello_first(self):
        client = await self.client(hello=False)
        client.send({"type": "generate", "id": 1, "prompt_token_ids": [1]})
        frames = await client.until_closed()
        self.assertEqual(frames[0]["code"], "handshake_required")

    async def test_oversize_and_undecodable_frames_close_only_their_connection(self):
        other, _ = await self.ready()
        big, _ = await self.ready()
        big.send_raw((64 * 1024 + 1).to_bytes(4, "big"))
        self.assertEqual([f["code"] for f in await big.until_closed()], ["frame_too_large"])
        garbage, _ = await self.ready()
        garbage.send_raw(b"\x00\x00\x00\x02\xc1\xc1")
        self.assertEqual([f["code"] for f in await garbage.until_closed()], ["bad_frame"])
        other.send({"type": "generate", "id": 1, "prompt_token_ids": [1, 2], "sampling": {"max_tokens": 1}})
        self.assertEqual((await other.stream(1))[-1]["type"], "finish")
        self.assertEqual(self.server.counters["bad_frames"], 2)

    async def test_answers_unknown_types_and_bad_messages_and_carries_on(self):
        client, _ = await self.ready()
        client.send({"type": "teleport", "id": 5})
        client.send([1, 2, 3])
        unknown = await client.recv()
        self.assertEqual((unknown["code"], unknown["id"]), ("unknown_type", 5))
        self.assertEqual((await client.recv())["code"], "bad_message")
        client.send({"type": "generate", "id": 1, "prompt_token_ids": [1, 2], "sampling": {"max_tokens": 1}})
        self.assertEqual((await client.stream(1))[-1]["type"], "finish")

    async def test_a_dead_engine_closes_every_connection(self):
        client, _ = await self.ready()
        self.llm.dead = True
        client.send({"type": "generate", "id": 1, "prompt_token_ids": [1, 2]})
        frames = await client.until_closed()
        self.assertEqual(frames[0]["code"], "engine_dead")


if __name__ == "__main__":
    unittest.main()
