"""A fake AsyncLLM: the interface kvroute_vllm calls, behaving as vLLM's does where the worker depends on
it, with made-up tokens and a tiny prefix cache (no eviction) per data-parallel rank.

Where it follows vLLM (paths are vLLM's):
- Block size: the worker processes get their own copy of the config, and the platform or attention
  backend may change the block size there (platforms/interface.py and the platforms' block-size
  updates); the front end then gets back max_model_len and num_gpu_blocks (summed over ranks), and the
  block size only where vLLM copies it back too (COPIES_BLOCK_SIZE_BACK; v1/engine/core_client.py).
  The prefix cache, and so num_cached_tokens, uses the workers' block size.
- generate(..., data_parallel_rank=r): r indexes this front end's own ranks, 0 to num_ranks - 1, and is
  refused outside (v1/engine/input_processor.py, v1/engine/core_client.py); without r the least-loaded
  rank is chosen.
- Prompts: a TokensInput ({"type": "token", ...}) or a TokensPrompt; token ids beyond the vocabulary and
  prompts of max_model_len or more are refused with VLLMValidationError.
- num_cached_tokens counts local prefix-cache hits plus what a KV connector supplies: a request whose
  kv_transfer_params ask for a remote prefill (do_remote_prefill) gets its whole prompt but the last
  token from "remote" (v1/core/sched/scheduler.py). A request with do_remote_decode gets
  kv_transfer_params back in its finished output, as a prefill engine's connector returns them
  (v1/request.py reads them from SamplingParams.extra_args; outputs.py).
- Finish reasons stop, length, and the scripted "error" and "repetition" (v1/engine/__init__.py).

FAKE_VLLM_TOKEN_DELAY_MS sets a per-token delay so tests can abort or kill mid-stream."""

import asyncio
import copy
import os

from ...distributed.kv_events import binds
from ...exceptions import VLLMValidationError
from ...outputs import CompletionOutput, Logprob, RequestOutput
from ...sampling_params import RequestOutputKind
from .exceptions import EngineDeadError

VOCAB_SIZE = 151_936
# The platform's own block size when the user set none (as vLLM's CPU platform picks 128), and backends
# whose kernels take one block size only (as FlashMLA takes 64).
PLATFORM_BLOCK_SIZE = 128
FIXED_BLOCK_SIZE_BACKENDS = {"FLASHMLA": 64}


def worker_block_size(vllm_config) -> int:
    """The block size the worker processes end up with."""
    cache = vllm_config.cache_config
    fixed = FIXED_BLOCK_SIZE_BACKENDS.get(vllm_config.attention_backend or "")
    if fixed is not None:
        return fixed
    return cache.block_size if cache.user_specified_block_size else PLATFORM_BLOCK_SIZE


class AsyncLLM:
    COPIES_BLOCK_SIZE_BACK = False
    instances = 0

    def __init__(self, vllm_config, **kwargs):
        AsyncLLM.instances += 1
        self.vllm_config = vllm_config
        self.engine_block_size = worker_block_size(copy.deepcopy(vllm_config))
        parallel = vllm_config.parallel_config
        self.num_ranks = parallel.data_parallel_size_local if parallel.local_engines_only else parallel.data_parallel_size
        cache = vllm_config.cache_config
        cache.num_gpu_blocks = (cache.num_gpu_blocks_override or 1024) * self.num_ranks
        if self.COPIES_BLOCK_SIZE_BACK:
            cache.block_size = self.engine_block_size
        kv = vllm_config.kv_events_config
        # How each rank's KV-event publisher would open its socket.
        self.kv_events_socket = None if kv is None or not kv.enable_kv_cache_events else ("bind" if binds(kv.endpoint) else "connect")
        self.cached_prefixes = [set() for _ in range(self.num_ranks)]
        self.in_flight = [0] * self.num_ranks
        self.calls = []
        self.aborted = []
        self.dead = False
        # (finish_reason, after_tokens): the next request ends that way after that many tokens.
        self.scripted_finish = None
        self.delay = float(os.environ.get("FAKE_VLLM_TOKEN_DELAY_MS", "0")) / 1000

    @classmethod
    def from_vllm_config(cls, vllm_config, start_engine_loop=True, usage_context=None, stat_loggers=None, **kwargs):
        return cls(vllm_config, **kwargs)

    @classmethod
    def from_engine_args(cls, engine_args, start_engine_loop=True, usage_context=None, stat_loggers=None):
        return cls.from_vllm_config(engine_args.create_engine_config(usage_context))

    def _blocks(self, tokens, salt, lora):
        bs = self.engine_block_size
        key = (salt, lora)
        out = []
        for i in range(len(tokens) // bs):
            key = (key, tuple(tokens[i * bs:(i + 1) * bs]))
            out.append(hash(key))
        return out

    def _choose_rank(self, data_parallel_rank):
        if data_parallel_rank is None:
            return min(range(self.num_ranks), key=lambda r: self.in_flight[r])
        if not 0 <= data_parallel_rank < self.num_ranks:
            raise VLLMValidationError(f"data_parallel_rank {data_parallel_rank} is out of range [0, {self.num_ranks}).")
        return data_parallel_rank

    async def generate(self, prompt, sampling_params, request_id, *, lora_request=None, data_parallel_rank=None, **kwargs):
        self.calls.append(
            {"prompt": prompt, "params": sampling_params, "request_id": request_id, "lora": lora_request, "data_parallel_rank": data_parallel_rank}
        )
        if self.dead:
            raise EngineDeadError("EngineCore encountered an issue.")
        if "type" in prompt and prompt["type"] != "token":
            raise VLLMValidationError(f"unsupported input type {prompt['type']!r}")
        tokens = list(prompt["prompt_token_ids"])
        rank = self._choose_rank(data_parallel_rank)
        if max(tokens) >= VOCAB_SIZE:
            raise VLLMValidationError(f"Token id {max(tokens)} is out of vocabulary")
        if len(tokens) >= self.vllm_config.model_config.max_model_len:
            raise VLLMValidationError(f"The prompt (length {len(tokens)}) is longer than the maximum model length.")
        kv_params = (sampling_params.extra_args or {}).get("kv_transfer_params") or {}
        bs = self.engine_block_size
        lora = lora_request.lora_name if lora_request else None
        blocks = self._blocks(tokens, prompt.get("cache_salt"), lora)
        hits = 0
        for h in blocks[: (len(tokens) - 1) // bs]:
            if h not in self.cached_prefixes[rank]:
                break
            hits += 1
        cached_tokens = hits * bs
        if kv_params.get("do_remote_prefill"):
            cached_tokens = ((len(tokens) - 1) // bs) * bs
        self.cached_prefixes[rank].update(blocks)
        delta = sampling_params.output_kind == RequestOutputKind.DELTA
        scripted, self.scripted_finish = self.scripted_finish, None
        out_tokens, text = [], ""
        self.in_flight[rank] += 1
        try:
            for i in range(sampling_params.max_tokens):
                await asyncio.sleep(self.delay)
                if scripted is not None and i == scripted[1]:
                    completion = CompletionOutput(0, "" if delta else text, [] if delta else list(out_tokens), None, None, scripted[0], None)
                    yield RequestOutput(request_id, None, tokens, None, [completion], True, cached_tokens)
                    return
                token = (sum(tokens) + 31 * i) % 150_000
                out_tokens.append(token)
                piece = f" t{token}"
                text += piece
                finished = i + 1 == sampling_params.max_tokens or token in sampling_params.stop_token_ids
                reason = None
                if finished:
                    reason = "stop" if token in sampling_params.stop_token_ids else "length"
                logprobs = None
                if sampling_params.logprobs is not None:
                    logprobs = [{token: Logprob(-0.5, 1), (token + 1) % 150_000: Logprob(-1.5, 2)}]
                completion = CompletionOutput(
                    0,
                    piece if delta else text,
                    [token] if delta else list(out_tokens),
                    None,
                    logprobs,
                    reason,
                    token if reason == "stop" else None,
                )
                returned = None
                if finished and kv_params.get("do_remote_decode"):
                    returned = {"do_remote_prefill": True, "remote_engine_id": f"fake-rank-{rank}", "remote_block_ids": list(range(len(blocks))), "remote_request_id": request_id}
                yield RequestOutput(request_id, None, tokens, None, [completion], finished, cached_tokens, kv_transfer_params=returned)
                if finished:
                    return
        except (asyncio.CancelledError, GeneratorExit):
            self.aborted.append(request_id)
            raise
        finally:
            self.in_flight[rank] -= 1

    async def abort(self, request_id, internal=False):
        self.aborted.append(request_id)

    def shutdown(self, timeout=None):
        pass
