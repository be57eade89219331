import json
from dataclasses import dataclass, fields
from typing import Optional

from ..config import CacheConfig, KVEventsConfig, ModelConfig, ParallelConfig, VllmConfig


@dataclass
class AsyncEngineArgs:
    model: str = "facebook/opt-125m"
    served_model_name: Optional[list] = None
    block_size: Optional[int] = None
    max_model_len: Optional[int] = None
    num_gpu_blocks_override: Optional[int] = None
    enable_prefix_caching: Optional[bool] = None
    kv_events_config: Optional[KVEventsConfig] = None
    data_parallel_size: int = 1
    enable_lora: bool = False
    seed: int = 0

    @staticmethod
    def add_cli_args(parser):
        parser.add_argument("--model", default="facebook/opt-125m")
        parser.add_argument("--served-model-name", nargs="+", default=None)
        parser.add_argument("--block-size", type=int, default=None)
        parser.add_argument("--max-model-len", type=int, default=None)
        parser.add_argument("--num-gpu-blocks-override", type=int, default=None)
        parser.add_argument("--enable-prefix-caching", action="store_true", default=None)
        parser.add_argument("--kv-events-config", type=lambda s: KVEventsConfig(**json.loads(s)), default=None)
        parser.add_argument("--data-parallel-size", type=int, default=1)
        parser.add_argument("--enable-lora", action="store_true", default=False)
        parser.add_argument("--seed", type=int, default=0)
        return parser

    @classmethod
    def from_cli_args(cls, args):
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})

    def create_engine_config(self, usage_context=None):
        return VllmConfig(
            model_config=ModelConfig(self.model, self.served_model_name, self.max_model_len or 4096),
            cache_config=CacheConfig(self.block_size or 16, bool(self.enable_prefix_caching), self.num_gpu_blocks_override or 1024),
            parallel_config=ParallelConfig(self.data_parallel_size),
            kv_events_config=self.kv_events_config,
        )
