import enum


class RequestOutputKind(enum.Enum):
    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2


class SamplingParams:
    """Keyword arguments as vLLM takes them; validates a few the way vLLM does."""

    def __init__(self, *, n=1, temperature=1.0, top_p=1.0, top_k=0, min_p=0.0, repetition_penalty=1.0, seed=None, stop=None,
                 stop_token_ids=None, ignore_eos=False, max_tokens=16, min_tokens=0, logprobs=None,
                 output_kind=RequestOutputKind.CUMULATIVE, extra_args=None):
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}.")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}.")
        if repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be greater than zero, got {repetition_penalty}.")
        self.n = n
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.min_p = min_p
        self.repetition_penalty = repetition_penalty
        self.seed = seed
        self.stop = list(stop or [])
        self.stop_token_ids = list(stop_token_ids or [])
        self.ignore_eos = ignore_eos
        self.max_tokens = max_tokens
        self.min_tokens = min_tokens
        self.logprobs = logprobs
        self.output_kind = output_kind
        self.extra_args = extra_args
