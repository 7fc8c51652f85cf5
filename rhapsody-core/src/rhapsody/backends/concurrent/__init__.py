"""The embedded default backend: thread/process pools and subprocesses, nothing else to install."""

from .backend import ConcurrentExecutionBackend

__all__ = ["ConcurrentExecutionBackend"]
