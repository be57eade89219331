"""msgpack bodies through msgspec where it can be imported, else through the msgpack package.

vLLM's own environment has msgspec (vLLM requires it) and not msgpack, so inside vLLM the worker needs
nothing installed beside it; Debian's python3-msgpack serves the worker's tests, where vLLM is absent.
Both write plain msgpack (str as str, bytes as bin, no extension types), which is what the protocol asks.
"""

from __future__ import annotations

from typing import Any, Callable

try:
    import msgspec.msgpack as _msgspec_msgpack

    BACKEND = "msgspec"
    _encoder = _msgspec_msgpack.Encoder()
    _decoder = _msgspec_msgpack.Decoder()
    encode: Callable[[Any], bytes] = _encoder.encode
    _decode: Callable[[bytes], Any] = _decoder.decode
except ImportError:
    try:
        import msgpack as _msgpack
    except ImportError as error:
        raise ImportError(
            "kvroute_vllm needs msgspec (installed with vLLM) or msgpack (Debian: python3-msgpack) to speak the engine protocol"
        ) from error

    BACKEND = "msgpack"

    def encode(value: Any) -> bytes:
        return _msgpack.packb(value, use_bin_type=True)

    def _decode(body: bytes) -> Any:
        return _msgpack.unpackb(body, raw=False, strict_map_key=False)


def decode(body: bytes) -> Any:
    """One msgpack value; raises ValueError when the bytes are not exactly that."""
    try:
        return _decode(body)
    except Exception as error:  # each library raises its own types for bad input
        raise ValueError(f"a {len(body)}-byte frame is not msgpack ({type(error).__name__}: {error})") from error
