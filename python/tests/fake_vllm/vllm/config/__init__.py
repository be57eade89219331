"""The configs kvroute_vllm reads, with vLLM's defaults and derived values where the worker depends on
them (vllm/config/cache.py, parallel.py, model.py, kv_events.py)."""

from dataclasses import dataclass, field
from typing import ClassVar, Optional

# Stand-ins for facts vLLM reads from a model's files: which models are hybrid (attention plus Mamba or
# linear-attention layers), and the sampling defaults in a model's generation_config.json.
HYBRID_MODELS = {"fake/hybrid-mamba"}
GENERATION_CONFIGS = {
    "fake/tuned": {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "repetition_penalty": 1.05, "max_new_tokens": 64, "do_sample": True},
}


@dataclass
class KVEventsConfig:
    enable_kv_cache_events: bool = False
    publisher: Optional[str] = None
    endpoint: str = "tcp://*:5557"
    replay_endpoint: Optional[str] = None
    buffer_steps: int = 10_000
    hwm: int = 100_000
    max_queue_size: int = 100_000
    topic: str = ""

    def __post_init__(self):
        if self.publisher is None:
            self.publisher = "zmq" if self.enable_kv_cache_events else "null"


@dataclass
class ModelConfig:
    model: str
    served_model_name: object
    max_model_len: int
    generation_config: str = "auto"
    override_generation_config: dict = field(default_factory=dict)

    @property
    def is_hybrid(self) -> bool:
        return self.model in HYBRID_MODELS

    def get_diff_sampling_param(self) -> dict:
        """As vLLM: the model's generation config ("auto") or nothing ("vllm"), overrides on top, only the
        sampling keys, max_new_tokens renamed max_tokens."""
        config = {} if self.generation_config == "vllm" else dict(GENERATION_CONFIGS.get(self.model, {}))
        config.update(self.override_generation_config)
        keys = ("repetition_penalty", "temperature", "top_k", "top_p", "min_p", "max_new_tokens")
        diff = {k: config[k] for k in keys if config.get(k) is not None}
        if "max_new_tokens" in diff:
            diff["max_tokens"] = diff.pop("max_new_tokens")
        return diff


@dataclass
class CacheConfig:
    DEFAULT_BLOCK_SIZE: ClassVar[int] = 16
    block_size: Optional[int] = None
    enable_prefix_caching: bool = True
    num_gpu_blocks_override: Optional[int] = None
    # Set after profiling (in the fake, when AsyncLLM is built).
    num_gpu_blocks: Optional[int] = None
    user_specified_block_size: bool = field(default=False, init=False)

    def __post_init__(self):
        if self.block_size is None:
            self.block_size = self.DEFAULT_BLOCK_SIZE
        else:
            self.user_specified_block_size = True


@dataclass
class ParallelConfig:
    data_parallel_size: int = 1
    data_parallel_size_local: int = 1
    data_parallel_rank: int = 0
    data_parallel_external_lb: bool = False
    data_parallel_hybrid_lb: bool = False

    @property
    def data_parallel_index(self) -> int:
        return self.data_parallel_rank

    @property
    def local_engines_only(self) -> bool:
        return self.data_parallel_external_lb or self.data_parallel_hybrid_lb


@dataclass
class VllmConfig:
    model_config: ModelConfig
    cache_config: CacheConfig
    parallel_config: ParallelConfig = field(default_factory=ParallelConfig)
    kv_events_config: Optional[KVEventsConfig] = None
    # The attention backend the workers will use (vLLM's --attention-backend); None: the platform's choice.
    attention_backend: Optional[str] = None
