import unittest

from tests import helpers  # noqa: F401 (puts the fake vLLM on the path)
from kvroute_vllm import protocol as p


class FramingTest(unittest.TestCase):
    def test_round_trip(self):
        message = {"type": "delta", "id": 3, "token_ids": [1, 70000], "text": " word"}
        frame = p.encode_frame(message)
        self.assertEqual(int.from_bytes(frame[:4], "big"), len(frame) - 4)
        self.assertEqual(p.decode_body(frame[4:]), message)

    def test_not_msgpack(self):
        for body in (b"\xc1", b"\x93\x01", b"\x01\x02"):
            with self.assertRaises(ValueError):
                p.decode_body(body)


class GenerateTest(unittest.TestCase):
    def test_reads_every_field_and_ignores_unknown_ones(self):
        g = p.parse_generate(
            {
                "type": "generate", "id": 9, "prompt_token_ids": [1, 2], "overlap_blocks": 1, "lora_name": "a",
                "cache_salt": "s", "request_id": "r", "future": True, "data_parallel_rank": 3,
                "kv_transfer_params": {"do_remote_decode": True, "ids": [1, 2]},
                "sampling": {"max_tokens": 4, "temperature": 0, "top_p": 0.5, "top_k": -1, "seed": 2**40,
                             "stop": ["x"], "stop_token_ids": [7], "ignore_eos": True, "min_tokens": 1, "logprobs": 2},
            }
        )
        self.assertEqual(g.id, 9)
        self.assertEqual(g.sampling.seed, 2**40)
        self.assertEqual(g.sampling.temperature, 0.0)
        self.assertEqual((g.overlap_blocks, g.lora_name, g.cache_salt, g.request_id), (1, "a", "s", "r"))
        self.assertEqual((g.data_parallel_rank, g.kv_transfer_params), (3, {"do_remote_decode": True, "ids": [1, 2]}))
        plain = p.parse_generate({"type": "generate", "id": 1, "prompt_token_ids": [1]})
        self.assertEqual((plain.data_parallel_rank, plain.kv_transfer_params), (None, None))

    def test_names_the_bad_field(self):
        cases = [
            ({"prompt_token_ids": []}, "prompt_token_ids must hold at least 1"),
            ({"prompt_token_ids": [1, -1]}, "prompt_token_ids[1]"),
            ({"sampling": {"max_tokens": 0}}, "max_tokens"),
            ({"sampling": {"top_p": 0}}, "top_p"),
            ({"sampling": {"stop": "x"}}, "stop must be an array"),
            ({"sampling": {"ignore_eos": 1}}, "ignore_eos"),
            ({"lora_name": 3}, "lora_name must be a string"),
            ({"data_parallel_rank": -1}, "data_parallel_rank must be an integer from 0"),
            ({"data_parallel_rank": True}, "data_parallel_rank must be an integer from 0 to 4294967295, not the boolean True"),
            ({"kv_transfer_params": [1]}, "kv_transfer_params must be a map, not an array"),
        ]
        for fields, text in cases:
            with self.subTest(fields=fields):
                with self.assertRaises(p.ProtocolError) as caught:
                    p.parse_generate({"type": "generate", "id": 1, "prompt_token_ids": [1], **fields})
                self.assertEqual(caught.exception.code, "invalid_request")
                self.assertEqual(caught.exception.request_id, 1)
                self.assertIn(text, caught.exception.message)

    def test_hello(self):
        self.assertEqual(p.parse_hello({"protocol": 1}).block_size, None)
        with self.assertRaises(p.ProtocolError) as caught:
            p.parse_hello({"protocol": "one"})
        self.assertEqual(caught.exception.code, "bad_hello")


if __name__ == "__main__":
    unittest.main()
