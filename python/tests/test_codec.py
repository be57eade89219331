"""Which msgpack library the worker speaks through. Each case runs in a fresh interpreter, since the choice
is made once, at import. The msgspec case uses a stand-in (tests/msgspec_standin): Debian has no
msgspec, so this checks the choice and the calls the codec makes, not msgspec itself."""

import json
import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.dirname(HERE)
STANDIN = os.path.join(HERE, "msgspec_standin")

PROBE = """
import json, sys
{setup}
from kvroute_vllm import codec, protocol as p
frame = p.encode_frame({{"type": "delta", "id": 3, "token_ids": [1, 70000], "text": " x"}})
back = p.decode_body(frame[4:])
try:
    p.decode_body(b"\\x93\\x01")
    bad = None
except ValueError as error:
    bad = str(error)
calls = getattr(sys.modules.get("msgspec"), "CALLS", None)
print(json.dumps({{"backend": codec.BACKEND, "back": back, "bad": bad, "calls": calls}}))
"""


def probe(setup: str = "", extra_path: str = "") -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (extra_path, PYTHON_DIR) if p)}
    result = subprocess.run([sys.executable, "-c", PROBE.format(setup=setup)], env=env, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise AssertionError(result.stderr)
    return json.loads(result.stdout)


class CodecChoiceTest(unittest.TestCase):
    def test_prefers_msgspec_when_it_can_be_imported(self):
        out = probe(extra_path=STANDIN)
        self.assertEqual(out["backend"], "msgspec")
        self.assertEqual(out["back"], {"type": "delta", "id": 3, "token_ids": [1, 70000], "text": " x"})
        self.assertEqual(out["calls"], {"encode": 1, "decode": 2}, "both directions go through msgspec's Encoder and Decoder")
        self.assertIn("is not msgpack (DecodeError", out["bad"])

    def test_falls_back_to_msgpack(self):
        out = probe(setup="sys.modules['msgspec'] = None  # as if it were not installed")
        self.assertEqual(out["backend"], "msgpack")
        self.assertEqual(out["back"]["token_ids"], [1, 70000])
        self.assertIsNone(out["calls"])
        self.assertIn("is not msgpack", out["bad"])

    def test_says_what_to_install_when_neither_is_there(self):
        env = {**os.environ, "PYTHONPATH": PYTHON_DIR}
        code = "import sys; sys.modules['msgspec'] = None; sys.modules['msgpack'] = None; import kvroute_vllm.protocol"
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("needs msgspec (installed with vLLM) or msgpack (Debian: python3-msgpack)", result.stderr)


if __name__ == "__main__":
    unittest.main()
