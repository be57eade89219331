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
    data_parallel_size_local: Optional[int] = None
    data_parallel_rank: Optional[int] = None
    data_parallel_start_rank: Optional[int] = None
    data_parallel_hybrid_lb: bool = False
    attention_backend: Optional[str] = None
    generation_config: str = "auto"
    enable_lora: bool = False
    disable_log_stats: bool = False
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
        parser.add_argument("--data-parallel-size-local", type=int, default=None)
        parser.add_argument("--data-parallel-rank", type=int, default=None)
        parser.add_argument("--data-parallel-start-rank", type=int, default=None)
        parser.add_argument("--data-parallel-hybrid-lb", action="store_true", default=False)
        parser.add_argument("--attention-backend", default=None)
        parser.add_argument("--generation-config", default="auto")
        parser.add_argument("--enable-lora", action="store_true", default=False)
        parser.add_argument("--disable-log-stats", action="store_true", default=False)
        parser.add_argument("--seed", type=int, default=0)
        return parser

    @classmethod
    def from_cli_args(cls, args):
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})

    def create_engine_config(self, usage_context=None, headless=False):
        # As vLLM: --data-parallel-rank means external load balancing (this front end owns that one rank);
        # --data-parallel-hybrid-lb with --data-parallel-start-rank means this node owns the local ranks
        # from the start rank; otherwise the front end owns every rank from 0.
        if self.data_parallel_rank is not None:
            parallel = ParallelConfig(self.data_parallel_size, 1, self.data_parallel_rank, data_parallel_external_lb=True)
        elif self.data_parallel_hybrid_lb:
            local = self.data_parallel_size_local or 1
            parallel = ParallelConfig(self.data_parallel_size, local, self.data_parallel_start_rank or 0, data_parallel_hybrid_lb=True)
        else:
            parallel = ParallelConfig(self.data_parallel_size, self.data_parallel_size_local or self.data_parallel_size, 0)
        return VllmConfig(
            model_config=ModelConfig(self.model, self.served_model_name, self.max_model_len or 4096, self.generation_config),
            cache_config=CacheConfig(self.block_size, bool(self.enable_prefix_caching), self.num_gpu_blocks_override),
            parallel_config=parallel,
            kv_events_config=self.kv_events_config,
            attention_backend=self.attention_backend,
        )
