"""A stand-in for the parts of vLLM that kvroute_vllm uses, with the same names and call shapes, so the
worker can be tested where vLLM cannot be installed. It is not vLLM: it computes nothing on a GPU."""

from .inputs import TokensPrompt
from .sampling_params import SamplingParams

__version__ = "0.0.0+fake"
__all__ = ["SamplingParams", "TokensPrompt"]
