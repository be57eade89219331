import contextlib
import io
import unittest

from tests import helpers  # noqa: F401 (puts the fake vLLM on the path)
from kvroute_vllm.main import main, own_parser, parse_lora_modules, vllm_engine_args
from vllm.config import KVEventsConfig


class MainTest(unittest.TestCase):
    def test_help_names_the_worker_options(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.assertEqual(main(["--help"]), 0)
        for option in ("--port", "--kv-events-endpoint", "--lora-module", "vLLM's engine arguments"):
            self.assertIn(option, out.getvalue())

    def test_keeps_a_given_kv_events_config_but_switches_it_on(self):
        ours, rest = own_parser().parse_known_args(["--port", "1", "--kv-events-config", '{"endpoint": "tcp://*:6000", "topic": "kv"}'])
        args = vllm_engine_args(rest, ours)
        self.assertIsInstance(args.kv_events_config, KVEventsConfig)
        self.assertEqual((args.kv_events_config.endpoint, args.kv_events_config.topic), ("tcp://*:6000", "kv"))
        self.assertTrue(args.kv_events_config.enable_kv_cache_events)
        self.assertEqual(args.kv_events_config.publisher, "zmq")
        self.assertTrue(args.enable_prefix_caching)

    def test_lora_modules(self):
        self.assertEqual(parse_lora_modules(["a=/x", "b=/y=z"]), {"a": "/x", "b": "/y=z"})
        with self.assertRaises(SystemExit):
            parse_lora_modules(["nopath"])


if __name__ == "__main__":
    unittest.main()
