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

    def __init__(self, engine: Any, *, engine_id: Optional[str] = None, lora_modules: Optional[dict] = None):
        import vllm
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        self.engine = engine
        self._sampling_params = SamplingParams
        self._tokens_prompt = TokensPrompt
        self._delta = RequestOutputKind.DELTA
        self._lora_modules = dict(lora_modules or {})
        self._lora_requests: dict[str, Any] = {}
        self._vllm_version = getattr(vllm, "__version__", "unknown")
        self._engine_id = engine_id or socket.gethostname()
        try:
            from vllm.v1.engine.exceptions import EngineDeadError
        except ImportError:
            EngineDeadError = ()  # noqa: N806 (an empty tuple of exception types catches nothing)
        self._engine_dead = EngineDeadError

    @property
    def config(self) -> Any:
        return self.engine.vllm_config

    def info(self) -> dict:
        cfg = self.config
        kv = getattr(cfg, "kv_events_config", None)
        kv_events = None
        if kv is not None and kv.enable_kv_cache_events and kv.publisher == "zmq":
            kv_events = {
                "endpoint": kv.endpoint,
                "topic": kv.topic,
                "data_parallel_size": cfg.parallel_config.data_parallel_size,
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
        kwargs: dict = {
            # An absent max_tokens means "up to the context length" in the protocol; vLLM's default is 16.
            "max_tokens": s.max_tokens if s.max_tokens is not None else max_model_len - prompt_len,
            "output_kind": self._delta,
        }
        for name in ("temperature", "top_p", "top_k", "seed", "stop", "stop_token_ids", "ignore_eos", "min_tokens", "logprobs"):
            value = getattr(s, name)
            if value is not None:
                kwargs[name] = value
        try:
            return self._sampling_params(**kwargs)
        except (ValueError, TypeError) as error:
            raise RequestFailed("invalid_request", str(error)) from None

    async def generate(self, request: p.Generate, engine_request_id: str) -> AsyncIterator[Union[Delta, Finish]]:
        params = self._params(request)
        lora = self._lora_request(request.lora_name)
        prompt = self._tokens_prompt(prompt_token_ids=request.prompt_token_ids)
        if request.cache_salt is not None:
            prompt["cache_salt"] = request.cache_salt
        completion_tokens = 0
        try:
            async for output in self.engine.generate(prompt, params, engine_request_id, lora_request=lora):
                completion = output.outputs[0]
                token_ids = list(completion.token_ids)
                completion_tokens += len(token_ids)
                if token_ids or completion.text:
                    yield Delta(token_ids, completion.text, _logprob_pairs(token_ids, completion.logprobs))
                if output.finished:
                    cached = getattr(output, "num_cached_tokens", None)
                    bs = self.config.cache_config.block_size
                    overlap = request.overlap_blocks
                    log.info(
                        "request %s (%s): prompt %d tokens, cached %s (vLLM), router overlap_blocks %s (%s tokens), output %d tokens, %s",
                        engine_request_id,
                        request.request_id or "-",
                        len(request.prompt_token_ids),
                        cached,
                        overlap,
                        None if overlap is None else overlap * bs,
                        completion_tokens,
                        completion.finish_reason,
                    )
                    yield Finish(
                        finish_reason=completion.finish_reason or "stop",
                        stop_reason=completion.stop_reason,
                        prompt_tokens=len(request.prompt_token_ids),
                        completion_tokens=completion_tokens,
                        cached_tokens=cached,
                    )
                    return
        except self._engine_dead as error:
            raise EngineDead(str(error) or "vLLM's engine core is dead") from error
        except ValueError as error:
            # vLLM raises ValueError (VLLMValidationError is one) for requests it will not take.
            raise RequestFailed("invalid_request", str(error)) from None

    async def abort(self, engine_request_id: str) -> None:
        try:
            await self.engine.abort(engine_request_id)
        except Exception:  # the request may be gone already; aborting is best effort
            log.debug("abort of %s failed", engine_request_id, exc_info=True)


def build_async_llm(engine_args: Any) -> Any:
    from vllm.v1.engine.async_llm import AsyncLLM

    return AsyncLLM.from_engine_args(engine_args)
