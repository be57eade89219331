from dataclasses import dataclass, field
from typing import Optional


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


@dataclass
class CacheConfig:
    block_size: int
    enable_prefix_caching: bool
    num_gpu_blocks: Optional[int] = None


@dataclass
class ParallelConfig:
    data_parallel_size: int = 1


@dataclass
class VllmConfig:
    model_config: ModelConfig
    cache_config: CacheConfig
    parallel_config: ParallelConfig = field(default_factory=ParallelConfig)
    kv_events_config: Optional[KVEventsConfig] = None
