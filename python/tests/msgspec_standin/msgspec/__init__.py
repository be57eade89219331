"""A stand-in for msgspec with the two names kvroute_vllm.codec uses (msgspec.msgpack.Encoder and
Decoder) and msgspec's error type, built on the msgpack package. It is not msgspec: it lets the tests
check that the codec prefers msgspec when it can be imported and calls it as msgspec's API is called.
Every call is counted in CALLS."""

from . import msgpack  # noqa: F401

CALLS = {"encode": 0, "decode": 0}


class MsgspecError(Exception):
    pass


class DecodeError(MsgspecError, ValueError):
    pass
