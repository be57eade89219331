"""kvroute's vLLM worker: serves vLLM's AsyncLLM over kvroute's engine protocol (docs/protocol.md)."""

__version__ = "0.1.0"
