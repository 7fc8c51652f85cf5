"""RHAPSODY's plugin system: hook specs, markers, discovery and the backend registry.

Its names are imported on first use: ``import rhapsody`` (a pool worker's, the telemetry
writer's) imports this package but needs none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy_names import lazy_exports

if TYPE_CHECKING:
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

_LAZY = {
    **dict.fromkeys(
        [
            "ENTRY_POINT_GROUP",
            "ENV_BLOCK",
            "ENV_LOAD",
            "PluginHost",
            "get_plugin_host",
            "get_plugin_manager",
            "register",
            "reset_plugin_host",
            "unregister",
        ],
        ".manager",
    ),
    "hookimpl": ".markers",
    "hookspec": ".markers",
    "BackendInfo": ".registry",
    "BackendSpec": ".registry",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
