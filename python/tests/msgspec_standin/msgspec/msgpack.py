import msgpack as _msgpack

import msgspec


class Encoder:
    def encode(self, obj) -> bytes:
        msgspec.CALLS["encode"] += 1
        return _msgpack.packb(obj, use_bin_type=True)


class Decoder:
    def __init__(self, type=None):
        self.type = type

    def decode(self, buf):
        msgspec.CALLS["decode"] += 1
        try:
            return _msgpack.unpackb(bytes(buf), raw=False, strict_map_key=False)
        except Exception as error:  # msgspec raises DecodeError for any malformed input
            raise msgspec.DecodeError(str(error)) from None
