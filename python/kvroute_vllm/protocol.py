"""The engine protocol's wire format: framing and message checks (see docs/protocol.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

from . import codec

PROTOCOL_VERSION = 1
HEADER_BYTES = 4
DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024
U32_MAX = 0xFFFFFFFF


class ProtocolError(Exception):
    """A message the engine must answer with an error frame; `code` is the protocol's error code."""

    def __init__(self, code: str, message: str, request_id: Optional[int] = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


def encode_frame(message: dict) -> bytes:
    body = codec.encode(message)
    return len(body).to_bytes(HEADER_BYTES, "big") + body


def decode_body(body: bytes) -> Any:
    """One msgpack value; raises ValueError when the bytes are not exactly that."""
    return codec.decode(body)


def _describe(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return f"the boolean {value}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "a map"
    return f"{type(value).__name__} {value!r}"


def _is_u32(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= U32_MAX


def _u32(fields: dict, key: str, minimum: int = 0) -> int:
    value = fields.get(key)
    if not _is_u32(value) or value < minimum:
        raise ValueError(f"{key} must be an integer from {minimum} to {U32_MAX}, not {_describe(value)}")
    return value


def _opt_u32(fields: dict, key: str, minimum: int = 0) -> Optional[int]:
    return None if fields.get(key) is None else _u32(fields, key, minimum)


def _opt_str(fields: dict, key: str) -> Optional[str]:
    value = fields.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key} must be a string, not {_describe(value)}")
    return value


def _opt_number(fields: dict, key: str) -> Optional[float]:
    value = fields.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number, not {_describe(value)}")
    return float(value)


def _opt_map(fields: dict, key: str) -> Optional[dict]:
    value = fields.get(key)
    if value is not None and not isinstance(value, dict):
        raise ValueError(f"{key} must be a map, not {_describe(value)}")
    return value


def _u32_list(value: Any, key: str, min_length: int) -> list:
    if not isinstance(value, list):
        raise ValueError(f"{key} must be an array of integers, not {_describe(value)}")
    if len(value) < min_length:
        raise ValueError(f"{key} must hold at least {min_length} value(s)")
    for i, v in enumerate(value):
        if not _is_u32(v):
            raise ValueError(f"{key}[{i}] must be an integer from 0 to {U32_MAX}, not {_describe(v)}")
    return value


@dataclass
class Sampling:
    max_tokens: Optional[int] = None
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    top_k: Optional[int] = None
    seed: Optional[int] = None
    stop: Optional[list] = None
    stop_token_ids: Optional[list] = None
    ignore_eos: Optional[bool] = None
    min_tokens: Optional[int] = None
    logprobs: Optional[int] = None


@dataclass
class Generate:
    id: int
    prompt_token_ids: list
    sampling: Sampling = field(default_factory=Sampling)
    overlap_blocks: Optional[int] = None
    lora_name: Optional[str] = None
    cache_salt: Optional[str] = None
    request_id: Optional[str] = None
    data_parallel_rank: Optional[int] = None
    kv_transfer_params: Optional[dict] = None


@dataclass
class Hello:
    protocol: int
    client: str
    block_size: Optional[int]
    heartbeat_ms: Optional[int]


def message_id(message: dict) -> Optional[int]:
    value = message.get("id")
    return value if _is_u32(value) else None


def parse_hello(fields: dict) -> Hello:
    try:
        return Hello(
            protocol=_u32(fields, "protocol"),
            client=_opt_str(fields, "client") or "unknown",
            block_size=_opt_u32(fields, "block_size", 1),
            heartbeat_ms=_opt_u32(fields, "heartbeat_ms"),
        )
    except ValueError as error:
        raise ProtocolError("bad_hello", str(error)) from None


def _parse_sampling(value: Any) -> Sampling:
    if value is None:
        return Sampling()
    if not isinstance(value, dict):
        raise ValueError(f"sampling must be a map, not {_describe(value)}")
    s = Sampling(
        max_tokens=_opt_u32(value, "max_tokens", 1),
        temperature=_opt_number(value, "temperature"),
        top_p=_opt_number(value, "top_p"),
        min_tokens=_opt_u32(value, "min_tokens"),
        logprobs=_opt_u32(value, "logprobs"),
    )
    if s.temperature is not None and s.temperature < 0:
        raise ValueError(f"temperature must be at least 0, not {s.temperature}")
    if s.top_p is not None and not 0 < s.top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], not {s.top_p}")
    top_k = value.get("top_k")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < -1 or top_k > U32_MAX:
            raise ValueError(f"top_k must be -1 or a non-negative integer, not {_describe(top_k)}")
        s.top_k = top_k
    seed = value.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or abs(seed) > 2**63 - 1:
            raise ValueError(f"seed must be a 64-bit integer, not {_describe(seed)}")
        s.seed = seed
    stop = value.get("stop")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(x, str) and x for x in stop):
            raise ValueError(f"stop must be an array of non-empty strings, not {_describe(stop)}")
        s.stop = stop
    if value.get("stop_token_ids") is not None:
        s.stop_token_ids = _u32_list(value["stop_token_ids"], "stop_token_ids", 0)
    ignore_eos = value.get("ignore_eos")
    if ignore_eos is not None:
        if not isinstance(ignore_eos, bool):
            raise ValueError(f"ignore_eos must be a boolean, not {_describe(ignore_eos)}")
        s.ignore_eos = ignore_eos
    return s


def parse_generate(fields: dict) -> Generate:
    rid = message_id(fields)
    try:
        return Generate(
            id=_u32(fields, "id"),
            prompt_token_ids=_u32_list(fields.get("prompt_token_ids"), "prompt_token_ids", 1),
            sampling=_parse_sampling(fields.get("sampling")),
            overlap_blocks=_opt_u32(fields, "overlap_blocks"),
            lora_name=_opt_str(fields, "lora_name"),
            cache_salt=_opt_str(fields, "cache_salt"),
            request_id=_opt_str(fields, "request_id"),
            data_parallel_rank=_opt_u32(fields, "data_parallel_rank"),
            kv_transfer_params=_opt_map(fields, "kv_transfer_params"),
        )
    except ValueError as error:
        raise ProtocolError("invalid_request", str(error), rid) from None


def parse_abort(fields: dict) -> int:
    try:
        return _u32(fields, "id")
    except ValueError as error:
        raise ProtocolError("bad_message", str(error)) from None


def error_message(request_id: Optional[int], code: str, message: str) -> dict:
    return {"type": "error", "id": request_id, "code": code, "message": message}
