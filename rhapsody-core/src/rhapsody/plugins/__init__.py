"""RHAPSODY's plugin system: hook specs, markers, discovery and the backend registry."""

from .manager import (
    ENTRY_POINT_GROUP,
    ENV_BLOCK,
    ENV_LOAD,
    PluginHost,
    get_plugin_host,
    get_plugin_manager,
    register,
    reset_plugin_host,
    unregister,
)
from .markers import hookimpl, hookspec
from .registry import BackendInfo, BackendSpec

__all__ = [
    "ENTRY_POINT_GROUP",
    "ENV_BLOCK",
    "ENV_LOAD",
    "BackendInfo",
    "BackendSpec",
    "PluginHost",
    "get_plugin_host",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
    "register",
    "reset_plugin_host",
    "unregister",
]
