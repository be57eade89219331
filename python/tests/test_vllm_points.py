"""The worker against the fake AsyncLLM on each point where vLLM's source showed the worker would break
(numbered as in python/README.md). Each test fails if the worker goes back on its point."""

import asyncio
import contextlib
import unittest

from tests.helpers import WorkerCase, prompt  # first: puts the fake vLLM on the path

import vllm.inputs  # noqa: E402
from kvroute_vllm.main import main, own_parser, vllm_engine_args  # noqa: E402
from kvroute_vllm.vllm_engine import UnsupportedModel, build_async_llm  # noqa: E402
from vllm.v1.engine.async_llm import AsyncLLM  # noqa: E402

BASE = ["--model", "fake/model", "--max-model-len", "256", "--num-gpu-blocks-override", "100"]


class BlockSizeTest(WorkerCase, unittest.IsolatedAsyncioTestCase):
    """1. The block size is always set, so vLLM's workers cannot pick their own; hybrid models are refused."""

    async def test_vllm_gets_the_block_size_even_when_none_is_given(self):
        await self.start_worker(BASE)
        self.assertEqual(self.engine_args.block_size, 16)
        self.assertEqual(self.llm.engine_block_size, 16, "the workers use the size the handshake announces")
        _, welcome = await self.ready(block_size=16)
        self.assertEqual(welcome["block_size"], 16)
        tokens = prompt(40)
        await self.run_request({"prompt_token_ids": tokens, "sampling": {"max_tokens": 1}})
        again = await self.run_request({"prompt_token_ids": tokens, "sampling": {"max_tokens": 1}})
        self.assertEqual(again[-1]["usage"]["cached_tokens"], 32, "two 16-token blocks cached, as the router counts them")

    async def test_the_worker_option_sets_it(self):
        await self.start_worker(BASE + ["--block-size", "32"])
        _, welcome = await self.ready()
        self.assertEqual((welcome["block_size"], self.llm.engine_block_size), (32, 32))

    async def test_a_size_vllm_changes_and_reports_back_is_announced_and_refused_by_a_mismatched_router(self):
        with _patched(AsyncLLM, "COPIES_BLOCK_SIZE_BACK", True):
            await self.start_worker(BASE + ["--attention-backend", "FLASHMLA"])
        _, welcome = await self.ready()
        self.assertEqual(welcome["block_size"], 64)
        client = await self.client(block_size=16)
        frames = await client.until_closed()
        self.assertEqual(frames[0]["code"], "block_size_mismatch")
        self.assertIn("16", frames[0]["message"])
        self.assertIn("64", frames[0]["message"])

    def test_refuses_a_hybrid_model_before_starting_vllm(self):
        ours, rest = own_parser().parse_known_args(["--port", "0", "--model", "fake/hybrid-mamba"])
        started = AsyncLLM.instances
        with self.assertRaises(UnsupportedModel) as caught:
            build_async_llm(vllm_engine_args(rest, ours))
        self.assertIn("fake/hybrid-mamba is a hybrid model", str(caught.exception))
        self.assertEqual(AsyncLLM.instances, started, "no engine was built")
        with self.assertLogs("kvroute_vllm", "ERROR"):
            self.assertEqual(main(["--port", "0", "--model", "fake/hybrid-mamba", "--log-level", "CRITICAL"]), 2)


class KvEventsEndpointTest(WorkerCase, unittest.IsolatedAsyncioTestCase):
    """2. vLLM binds the publisher only for a wildcard endpoint; the router is told the address as given."""

    async def test_a_tcp_endpoint_with_a_host_is_bound_on_every_interface_and_announced_as_given(self):
        for given in ("tcp://10.1.2.3:5557", "tcp://0.0.0.0:5557", "tcp://*:5557"):
            with self.subTest(endpoint=given):
                await self.start_worker(BASE + ["--kv-events-endpoint", given])
                self.assertEqual(self.llm.vllm_config.kv_events_config.endpoint, "tcp://*:5557")
                self.assertEqual(self.llm.kv_events_socket, "bind")
                _, welcome = await self.ready()
                self.assertEqual(welcome["kv_events"]["endpoint"], given)
                await self._stop_worker()

    async def test_the_same_holds_for_a_given_kv_events_config_and_ipc_is_left_alone(self):
        await self.start_worker(BASE + ["--kv-events-config", '{"endpoint": "tcp://192.168.0.9:6000", "topic": "kv"}'])
        self.assertEqual((self.llm.vllm_config.kv_events_config.endpoint, self.llm.kv_events_socket), ("tcp://*:6000", "bind"))
        _, welcome = await self.ready()
        self.assertEqual(welcome["kv_events"]["endpoint"], "tcp://192.168.0.9:6000")
        await self._stop_worker()
        await self.start_worker(BASE + ["--kv-events-endpoint", "ipc:///run/kv.sock"])
        self.assertEqual((self.llm.vllm_config.kv_events_config.endpoint, self.llm.kv_events_socket), ("ipc:///run/kv.sock", "bind"))

    def test_a_malformed_tcp_endpoint_is_refused(self):
        ours, rest = own_parser().parse_known_args(["--port", "0", "--kv-events-endpoint", "tcp://nohostport"])
        with self.assertRaises(SystemExit) as caught:
            vllm_engine_args(rest, ours)
        self.assertIn("tcp://HOST:PORT", str(caught.exception))


class DataParallelTest(WorkerCase, unittest.IsolatedAsyncioTestCase):
    """3. The welcome names the ranks from parallel_config.data_parallel_rank; a generate's rank, numbered
    like the KV events, reaches vLLM as an index into the front end's own ranks."""

    async def test_hybrid_load_balancing_ranks_from_the_start_rank(self):
        await self.start_worker(
            BASE + ["--data-parallel-size", "8", "--data-parallel-size-local", "2", "--data-parallel-hybrid-lb", "--data-parallel-start-rank", "4"]
        )
        _, welcome = await self.ready()
        self.assertEqual((welcome["data_parallel_start_rank"], welcome["data_parallel_local_size"]), (4, 2))
        self.assertEqual(welcome["kv_events"]["data_parallel_size"], 2)
        self.assertEqual(welcome["num_blocks"], 200, "summed over the two local ranks")
        tokens = prompt(40)
        await self.run_request({"prompt_token_ids": tokens, "sampling": {"max_tokens": 1}, "data_parallel_rank": 5})
        same = await self.run_request({"prompt_token_ids": tokens, "sampling": {"max_tokens": 1}, "data_parallel_rank": 5})
        other = await self.run_request({"prompt_token_ids": tokens, "sampling": {"max_tokens": 1}, "data_parallel_rank": 4})
        self.assertEqual([c["data_parallel_rank"] for c in self.llm.calls], [1, 1, 0])
        self.assertEqual((same[-1]["usage"]["cached_tokens"], other[-1]["usage"]["cached_tokens"]), (32, 0), "each rank has its own cache")
        for rank in (3, 6):
            frames = await self.run_request({"prompt_token_ids": tokens, "data_parallel_rank": rank})
            self.assertEqual(frames[-1]["code"], "invalid_request")
            self.assertIn(f"data_parallel_rank {rank} is not served by this engine, which serves ranks 4 to 5", frames[-1]["message"])
        await self.run_request({"prompt_token_ids": tokens, "sampling": {"max_tokens": 1}})
        self.assertIsNone(self.llm.calls[-1]["data_parallel_rank"], "no rank asked for: vLLM chooses")

    async def test_external_load_balancing_serves_its_one_rank(self):
        await self.start_worker(BASE + ["--data-parallel-size", "4", "--data-parallel-rank", "3"])
        _, welcome = await self.ready()
        self.assertEqual((welcome["data_parallel_start_rank"], welcome["data_parallel_local_size"]), (3, 1))
        frames = await self.run_request({"prompt_token_ids": prompt(20), "sampling": {"max_tokens": 1}, "data_parallel_rank": 3})
        self.assertEqual(frames[-1]["type"], "finish")
        self.assertEqual(self.llm.calls[-1]["data_parallel_rank"], 0)

    async def test_without_data_parallelism_rank_0_alone(self):
        await self.start_worker(BASE)
        _, welcome = await self.ready()
        self.assertEqual((welcome["data_parallel_start_rank"], welcome["data_parallel_local_size"]), (0, 1))


class DefaultSamplingTest(WorkerCase, unittest.IsolatedAsyncioTestCase):
    """5. The model's generation_config applies under the request's own fields, as under `vllm serve`."""

    async def test_model_defaults_under_the_request(self):
        await self.start_worker(["--model", "fake/tuned", "--max-model-len", "256"])
        await self.run_request({"prompt_token_ids": prompt(20)})
        await self.run_request({"prompt_token_ids": prompt(20), "sampling": {"temperature": 0, "top_k": -1, "max_tokens": 100}})
        await self.run_request({"prompt_token_ids": prompt(20), "sampling": {"max_tokens": 5}})
        defaults, own, short = (c["params"] for c in self.llm.calls)
        self.assertEqual((defaults.temperature, defaults.top_p, defaults.top_k, defaults.repetition_penalty), (0.6, 0.95, 20, 1.05))
        self.assertEqual(defaults.max_tokens, 64, "the model's max_new_tokens caps an absent max_tokens")
        self.assertEqual((own.temperature, own.top_k, own.top_p), (0, -1, 0.95))
        self.assertEqual(own.max_tokens, 64, "and a larger requested one, as vLLM's get_max_tokens does")
        self.assertEqual(short.max_tokens, 5)

    async def test_generation_config_vllm_turns_them_off(self):
        await self.start_worker(["--model", "fake/tuned", "--max-model-len", "256", "--generation-config", "vllm"])
        await self.run_request({"prompt_token_ids": prompt(20)})
        params = self.llm.calls[0]["params"]
        self.assertEqual((params.temperature, params.top_k, params.repetition_penalty, params.max_tokens), (1.0, 0, 1.0, 236))


class FinishReasonTest(WorkerCase, unittest.IsolatedAsyncioTestCase):
    """6. vLLM's "error" becomes an engine_error frame; "repetition" is passed on."""

    async def asyncSetUp(self):
        await self.start_worker(BASE)

    async def test_error_before_any_token(self):
        self.llm.scripted_finish = ("error", 0)
        frames = await self.run_request({"prompt_token_ids": prompt(20), "sampling": {"max_tokens": 5}})
        self.assertEqual([(f["type"], f.get("code")) for f in frames], [("error", "engine_error")])
        self.assertIn('finish reason "error"', frames[0]["message"])

    async def test_error_after_two_tokens(self):
        self.llm.scripted_finish = ("error", 2)
        frames = await self.run_request({"prompt_token_ids": prompt(20), "sampling": {"max_tokens": 5}})
        self.assertEqual([f["type"] for f in frames], ["delta", "delta", "error"])
        self.assertEqual(frames[-1]["code"], "engine_error")

    async def test_repetition_is_a_finish(self):
        self.llm.scripted_finish = ("repetition", 1)
        frames = await self.run_request({"prompt_token_ids": prompt(20), "sampling": {"max_tokens": 5}})
        self.assertEqual([f["type"] for f in frames], ["delta", "finish"])
        self.assertEqual((frames[-1]["finish_reason"], frames[-1]["usage"]["completion_tokens"]), ("repetition", 1))


class KvTransferParamsTest(WorkerCase, unittest.IsolatedAsyncioTestCase):
    """7. kv_transfer_params go to SamplingParams.extra_args and come back from RequestOutput."""

    async def asyncSetUp(self):
        await self.start_worker(BASE)

    async def test_both_ways(self):
        sent = {"do_remote_decode": True, "do_remote_prefill": False}
        frames = await self.run_request({"prompt_token_ids": prompt(40), "sampling": {"max_tokens": 2}, "kv_transfer_params": sent})
        self.assertEqual(self.llm.calls[0]["params"].extra_args, {"kv_transfer_params": sent})
        returned = frames[-1]["kv_transfer_params"]
        self.assertEqual((returned["do_remote_prefill"], returned["remote_block_ids"]), (True, [0, 1]))

    async def test_absent_both_ways(self):
        frames = await self.run_request({"prompt_token_ids": prompt(40), "sampling": {"max_tokens": 2}})
        self.assertIsNone(self.llm.calls[0]["params"].extra_args)
        self.assertNotIn("kv_transfer_params", frames[-1])


class PromptTest(WorkerCase, unittest.IsolatedAsyncioTestCase):
    """8. Prompts through vllm.inputs.tokens_input where it exists, TokensPrompt where it does not."""

    async def test_tokens_input_with_the_cache_salt(self):
        await self.start_worker(BASE)
        await self.run_request({"prompt_token_ids": [5, 6], "sampling": {"max_tokens": 1}, "cache_salt": "tenant"})
        await self.run_request({"prompt_token_ids": [5, 6], "sampling": {"max_tokens": 1}})
        self.assertEqual(self.llm.calls[0]["prompt"], {"type": "token", "prompt_token_ids": [5, 6], "cache_salt": "tenant"})
        self.assertEqual(self.llm.calls[1]["prompt"], {"type": "token", "prompt_token_ids": [5, 6]})

    async def test_tokens_prompt_on_older_vllm(self):
        saved = vllm.inputs.tokens_input
        del vllm.inputs.tokens_input
        try:
            await self.start_worker(BASE)
        finally:
            vllm.inputs.tokens_input = saved
        await self.run_request({"prompt_token_ids": [5, 6], "sampling": {"max_tokens": 1}, "cache_salt": "tenant"})
        self.assertEqual(self.llm.calls[0]["prompt"], {"prompt_token_ids": [5, 6], "cache_salt": "tenant"})

    async def test_a_prompt_vllm_refuses_is_an_invalid_request(self):
        await self.start_worker(BASE)
        frames = await self.run_request({"prompt_token_ids": [5, 200_000]})
        self.assertEqual(frames[-1]["code"], "invalid_request", "newer vLLM's VLLMClientError is a refusal, not an engine failure")
        self.assertIn("out of vocabulary", frames[-1]["message"])


class CachedTokensTest(WorkerCase, unittest.IsolatedAsyncioTestCase):
    """9. cached_tokens is vLLM's num_cached_tokens as it is, KV-connector hits included."""

    async def test_connector_hits_count(self):
        await self.start_worker(BASE)
        frames = await self.run_request(
            {"prompt_token_ids": prompt(40), "sampling": {"max_tokens": 1}, "overlap_blocks": 0, "kv_transfer_params": {"do_remote_prefill": True}}
        )
        self.assertEqual(frames[-1]["usage"]["cached_tokens"], 32, "a cold local cache, but the prefill came from a remote engine")


@contextlib.contextmanager
def _patched(owner, name, value):
    saved = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, saved)


if __name__ == "__main__":
    unittest.main()
