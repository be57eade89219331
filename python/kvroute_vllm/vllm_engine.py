"""vLLM's AsyncLLM behind the engine protocol. vLLM is imported here only, so the protocol and the server
can be used and tested without it."""

from __future__ import annotations

import logging
import socket
from typing import Any, AsyncIterator, Optional, Union

from . import __version__
from . import protocol as p
from .server import Delta, EngineDead, Finish, RequestFailed

log = logging.getLogger("kvroute_vllm")


def _served_model_name(model_config: Any) -> str:
    served = getattr(model_config, "served_model_name", None)
    if isinstance(served, (list, tuple)):
        served = served[0] if served else None
    return served or model_config.model


def _logprob_pairs(token_ids: list, logprobs: Any) -> Optional[list]:
    """vLLM's per-token {token_id: Logprob} maps as [[token_id, logprob], ...], the sampled token first."""
    if logprobs is None:
        return None
    out = []
    for token_id, entry in zip(token_ids, logprobs):
        pairs = [[tid, float(lp.logprob)] for tid, lp in entry.items()]
        pairs.sort(key=lambda pair: (pair[0] != token_id, -pair[1]))
        out.append(pairs)
    return out


class VllmEngine:
    """Adapts AsyncLLM to the server's Engine interface."""

    def __init__(
        self,
        engine: Any,
        *,
        engine_id: Optional[str] = None,
        lora_modules: Optional[dict] = None,
        kv_events_endpoint: Optional[str] = None,
    ):
        import vllm
        import vllm.inputs
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        self.engine = engine
        self._sampling_params = SamplingParams
        # Newer vLLM takes prompts as engine inputs built by tokens_input (a raw prompt dict is
        # deprecated there); older vLLM has only TokensPrompt.
        self._tokens_input = getattr(vllm.inputs, "tokens_input", None)
        self._tokens_prompt = None if self._tokens_input is not None else vllm.inputs.TokensPrompt
        self._delta = RequestOutputKind.DELTA
        self._lora_modules = dict(lora_modules or {})
        self._lora_requests: dict[str, Any] = {}
        self._vllm_version = getattr(vllm, "__version__", "unknown")
        self._engine_id = engine_id or socket.gethostname()
        # The address announced for KV events when vLLM was given a bindable form of it (see main.py).
        self._kv_events_endpoint = kv_events_endpoint
        model_config = self.config.model_config
        # What `vllm serve` applies under each request's own fields: the model's generation_config
        # (vllm/config/model.py), unless vLLM was started with --generation-config vllm.
        get_defaults = getattr(model_config, "get_diff_sampling_param", None)
        self._default_sampling = dict(get_defaults() or {}) if get_defaults else {}
        self._rank_start, self._rank_count = data_parallel_ranks(self.config.parallel_config)
        try:
            from vllm.v1.engine.exceptions import EngineDeadError
        except ImportError:
            EngineDeadError = ()  # noqa: N806 (an empty tuple of exception types catches nothing)
        self._engine_dead = EngineDeadError
        try:
            # Newer vLLM raises request errors as VLLMClientError, which is not a ValueError.
            from vllm.exceptions import VLLMClientError

            self._request_errors: tuple = (ValueError, VLLMClientError)
        except ImportError:
            self._request_errors = (ValueError,)

    @property
    def config(self) -> Any:
        return self.engine.vllm_config

    def info(self) -> dict:
        cfg = self.config
        kv = getattr(cfg, "kv_events_config", None)
        kv_events = None
        if kv is not None and kv.enable_kv_cache_events and kv.publisher == "zmq":
            kv_events = {
                "endpoint": self._kv_events_endpoint or kv.endpoint,
                "topic": kv.topic,
                "data_parallel_size": self._rank_count,
                "replay_endpoint": kv.replay_endpoint,
                # vLLM's layout depends on its version; the router's decoder reads every layout.
                "layout": None,
                "medium": "GPU",
            }
        return {
            "engine_id": self._engine_id,
            "engine": f"vllm {self._vllm_version} (kvroute_vllm {__version__})",
            "model": _served_model_name(cfg.model_config),
            "block_size": cfg.cache_config.block_size,
            "num_blocks": cfg.cache_config.num_gpu_blocks,
            "max_model_len": cfg.model_config.max_model_len,
            "data_parallel_start_rank": self._rank_start,
            "data_parallel_local_size": self._rank_count,
            "kv_events": kv_events,
        }

    def _lora_request(self, name: Optional[str]) -> Any:
        if name is None:
            return None
        if name not in self._lora_modules:
            known = ", ".join(sorted(self._lora_modules)) or "none"
            raise RequestFailed("unknown_lora", f"unknown LoRA adapter {name!r}; this engine serves: {known}")
        if name not in self._lora_requests:
            from vllm.lora.request import LoRARequest

            self._lora_requests[name] = LoRARequest(name, len(self._lora_requests) + 1, self._lora_modules[name])
        return self._lora_requests[name]

    def _params(self, request: p.Generate) -> Any:
        s = request.sampling
        max_model_len = self.config.model_config.max_model_len
        prompt_len = len(request.prompt_token_ids)
        if prompt_len >= max_model_len:
            raise RequestFailed(
                "prompt_too_long", f"the prompt has {prompt_len} tokens; max_model_len {max_model_len} leaves no room for output"
            )
        defaults = self._default_sampling
        # As vLLM's server: the model's defaults first, the request's own fields over them.
        kwargs: dict = {k: v for k, v in defaults.items() if k != "max_tokens"}
        # An absent max_tokens means "up to the context length" (vLLM's own default would be 16); like
        # `vllm serve`, the model's default max_tokens caps it (vllm/entrypoints/utils.py get_max_tokens).
        caps = [max_model_len - prompt_len, s.max_tokens, defaults.get("max_tokens")]
        kwargs["max_tokens"] = min(c for c in caps if c is not None)
        kwargs["output_kind"] = self._delta
        for name in ("temperature", "top_p", "top_k", "seed", "stop", "stop_token_ids", "ignore_eos", "min_tokens", "logprobs"):
            value = getattr(s, name)
            if value is not None:
                kwargs[name] = value
        if request.kv_transfer_params is not None:
            # Where vLLM's KV connectors read them (vllm/v1/request.py).
            kwargs["extra_args"] = {"kv_transfer_params": request.kv_transfer_params}
        try:
            return self._sampling_params(**kwargs)
        except (ValueError, TypeError) as error:
            raise RequestFailed("invalid_request", str(error)) from None

    def _prompt(self, request: p.Generate) -> Any:
        if self._tokens_input is not None:
            return self._tokens_input(request.prompt_token_ids, cache_salt=request.cache_salt)
        prompt = self._tokens_prompt(prompt_token_ids=request.prompt_token_ids)
        if request.cache_salt is not None:
            prompt["cache_salt"] = request.cache_salt
        return prompt

    def _rank_kwargs(self, rank: Optional[int]) -> dict:
        """vLLM's data_parallel_rank for a protocol rank. The protocol numbers ranks as the KV events do
        (from parallel_config.data_parallel_rank on); vLLM's generate takes an index into this front
        end's own ranks, from 0 (v1/engine/input_processor.py checks it against [0, num_ranks))."""
        if rank is None:
            return {}
        start, count = self._rank_start, self._rank_count
        if not start <= rank < start + count:
            raise RequestFailed(
                "invalid_request", f"data_parallel_rank {rank} is not served by this engine, which serves ranks {start} to {start + count - 1}"
            )
        return {"data_parallel_rank": rank - start}

    async def generate(self, request: p.Generate, engine_request_id: str) -> AsyncIterator[Union[Delta, Finish]]:
        params = self._params(request)
        lora = self._lora_request(request.lora_name)
        rank = self._rank_kwargs(request.data_parallel_rank)
        prompt = self._prompt(request)
        completion_tokens = 0
        try:
            async for output in self.engine.generate(prompt, params, engine_request_id, lora_request=lora, **rank):
                completion = output.outputs[0]
                token_ids = list(completion.token_ids)
                completion_tokens += len(token_ids)
                if token_ids or completion.text:
                    yield Delta(token_ids, completion.text, _logprob_pairs(token_ids, completion.logprobs))
                if output.finished:
                    # num_cached_tokens counts prompt tokens vLLM did not compute: its own prefix-cache
                    # hits plus what a KV connector or KV offloading supplied.
                    cached = getattr(output, "num_cached_tokens", None)
                    self._log_finish(request, engine_request_id, cached, completion_tokens, completion.finish_reason)
                    if completion.finish_reason == "error":
                        # A request-level failure inside vLLM: an error frame, so the router can retry it
                        # elsewhere when no token was produced.
                        raise RequestFailed("engine_error", f'vLLM ended request {engine_request_id} with finish reason "error"')
                    yield Finish(
                        finish_reason=completion.finish_reason or "stop",
                        stop_reason=completion.stop_reason,
                        prompt_tokens=len(request.prompt_token_ids),
                        completion_tokens=completion_tokens,
                        cached_tokens=cached,
                        kv_transfer_params=getattr(output, "kv_transfer_params", None),
                    )
                    return
        except self._engine_dead as error:
            raise EngineDead(str(error) or "vLLM's engine core is dead") from error
        except self._request_errors as error:
            # vLLM refuses requests it will not take with ValueError, or VLLMClientError in newer versions.
            raise RequestFailed("invalid_request", str(error)) from None

    def _log_finish(self, request: p.Generate, engine_request_id: str, cached: Optional[int], completion_tokens: int, reason: Optional[str]) -> None:
        overlap = request.overlap_blocks
        bs = self.config.cache_config.block_size
        log.info(
            "request %s (%s): prompt %d tokens, cached %s (vLLM), router overlap_blocks %s (%s tokens), output %d tokens, %s",
            engine_request_id,
            request.request_id or "-",
            len(request.prompt_token_ids),
            cached,
            overlap,
            None if overlap is None else overlap * bs,
            completion_tokens,
            reason,
        )

    async def abort(self, engine_request_id: str) -> None:
        try:
            await self.engine.abort(engine_request_id)
        except Exception:  # the request may be gone already; aborting is best effort
            log.debug("abort of %s failed", engine_request_id, exc_info=True)


def data_parallel_ranks(parallel_config: Any) -> tuple:
    """(first rank, number of ranks) this front end serves, numbered as vLLM's KV events number them.

    With external or hybrid load balancing, a front end owns the local ranks from
    parallel_config.data_parallel_rank on; otherwise it owns all of them from 0 (vLLM's MPClient in
    v1/engine/core_client.py). data_parallel_index is the newer name of the same number."""
    start = getattr(parallel_config, "data_parallel_index", None)
    if start is None:
        start = parallel_config.data_parallel_rank
    local_only = getattr(parallel_config, "local_engines_only", None)
    if local_only is None:
        local_only = bool(getattr(parallel_config, "data_parallel_external_lb", False) or getattr(parallel_config, "data_parallel_hybrid_lb", False))
    count = parallel_config.data_parallel_size_local if local_only else parallel_config.data_parallel_size
    return start, max(1, count)


class UnsupportedModel(Exception):
    """A model the worker refuses to serve; the message says why."""


def build_async_llm(engine_args: Any) -> Any:
    """AsyncLLM for the engine arguments, after refusing what the router cannot follow."""
    from vllm.v1.engine.async_llm import AsyncLLM

    vllm_config = engine_args.create_engine_config()
    model_config = vllm_config.model_config
    if getattr(model_config, "is_hybrid", False):
        raise UnsupportedModel(
            f"{model_config.model} is a hybrid model (attention with Mamba or linear-attention layers): vLLM sizes its "
            "KV blocks inside the worker processes and its prefix cache does not map onto the router's block "
            "hashes, so kvroute_vllm does not serve it"
        )
    async_llm = AsyncLLM.from_vllm_config(vllm_config, disable_log_stats=getattr(engine_args, "disable_log_stats", False))
    block_size = async_llm.vllm_config.cache_config.block_size
    if block_size != engine_args.block_size:
        # Only vLLM versions that copy the workers' block size back to the front end show this; with
        # older ones the router notices from the block_size of the KV events.
        log.warning(
            "vLLM changed the block size from %s to %s (its attention backend needs it); the router must hash with --block-size %s",
            engine_args.block_size,
            block_size,
            block_size,
        )
    return async_llm
