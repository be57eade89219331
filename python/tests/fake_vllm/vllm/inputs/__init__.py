from typing import TypedDict

try:
    from typing import NotRequired
except ImportError:  # Python before 3.11
    from typing_extensions import NotRequired


class TokensPrompt(TypedDict):
    prompt_token_ids: list
    cache_salt: NotRequired[str]
