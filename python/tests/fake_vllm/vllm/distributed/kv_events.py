def binds(endpoint) -> bool:
    """Whether vLLM's ZMQ publisher binds its PUB socket to the endpoint or connects to it: it binds only
    for a wildcard ("*" or "::") or an ipc or inproc endpoint (ZmqEventPublisher._socket_setup)."""
    return bool(endpoint) and ("*" in endpoint or "::" in endpoint or endpoint.startswith("ipc://") or endpoint.startswith("inproc://"))
