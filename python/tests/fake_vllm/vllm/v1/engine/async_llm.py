"""A fake AsyncLLM: the interface kvroute_vllm calls, with a tiny prefix cache (no eviction) so that
num_cached_tokens behaves like vLLM's, deterministic made-up tokens, and a per-token delay taken from
the environment variable FAKE_VLLM_TOKEN_DELAY_MS so tests can abort or kill mid-stream."""

import asyncio
import os

from ...outputs import CompletionOutput, Logprob, RequestOutput
from ...sampling_params import RequestOutputKind
from .exceptions import EngineDeadError


class AsyncLLM:
    def __init__(self, vllm_config):
        self.vllm_config = vllm_config
        self.cached_prefixes = set()
        self.calls = []
        self.aborted = []
        self.dead = False
        self.delay = float(os.environ.get("FAKE_VLLM_TOKEN_DELAY_MS", "0")) / 1000

    @classmethod
    def from_engine_args(cls, engine_args, start_engine_loop=True, usage_context=None, stat_loggers=None):
        return cls(engine_args.create_engine_config(usage_context))

    def _blocks(self, tokens, salt, lora):
        bs = self.vllm_config.cache_config.block_size
        key = (salt, lora)
        out = []
        for i in range(len(tokens) // bs):
            key = (key, tuple(tokens[i * bs:(i + 1) * bs]))
            out.append(hash(key))
        return out

    async def generate(self, prompt, sampling_params, request_id, *, lora_request=None, **kwargs):
        self.calls.append({"prompt": prompt, "params": sampling_params, "request_id": request_id, "lora": lora_request})
        if self.dead:
            raise EngineDeadError("EngineCore encountered an issue.")
        tokens = list(prompt["prompt_token_ids"])
        if len(tokens) >= self.vllm_config.model_config.max_model_len:
            raise ValueError(f"The prompt (length {len(tokens)}) is longer than the maximum model length.")
        bs = self.vllm_config.cache_config.block_size
        lora = lora_request.lora_name if lora_request else None
        blocks = self._blocks(tokens, prompt.get("cache_salt"), lora)
        hits = 0
        for h in blocks[: (len(tokens) - 1) // bs]:
            if h not in self.cached_prefixes:
                break
            hits += 1
        self.cached_prefixes.update(blocks)
        delta = sampling_params.output_kind == RequestOutputKind.DELTA
        out_tokens, text = [], ""
        try:
            for i in range(sampling_params.max_tokens):
                await asyncio.sleep(self.delay)
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
                yield RequestOutput(request_id, None, tokens, None, [completion], finished, hits * bs)
                if finished:
                    return
        except (asyncio.CancelledError, GeneratorExit):
            self.aborted.append(request_id)
            raise

    async def abort(self, request_id, internal=False):
        self.aborted.append(request_id)

    def shutdown(self, timeout=None):
        pass
