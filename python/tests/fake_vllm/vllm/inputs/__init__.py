from typing import Literal, Optional, TypedDict

try:
    from typing import NotRequired
except ImportError:  # Python before 3.11
    from typing_extensions import NotRequired


class TokensPrompt(TypedDict):
    """The older prompt form (vllm/inputs/llm.py)."""

    prompt_token_ids: list
    cache_salt: NotRequired[str]


class TokensInput(TypedDict):
    """The newer engine input (vllm/inputs/engine.py): a prompt already rendered to tokens."""

    type: Literal["token"]
    prompt_token_ids: list
    prompt: NotRequired[str]
    cache_salt: NotRequired[str]


def tokens_input(prompt_token_ids: list, *, prompt: Optional[str] = None, cache_salt: Optional[str] = None) -> TokensInput:
    inputs = TokensInput(type="token", prompt_token_ids=prompt_token_ids)
    if prompt is not None:
        inputs["prompt"] = prompt
    if cache_salt is not None:
        inputs["cache_salt"] = cache_salt
    return inputs
