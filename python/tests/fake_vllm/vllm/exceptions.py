"""vLLM's error hierarchy as newer versions have it: request errors are VLLMClientError, not ValueError."""


class VLLMError(Exception):
    pass


class VLLMClientError(VLLMError):
    pass


class VLLMValidationError(VLLMClientError):
    pass
