"""The environment of a replica: the config's ``env``, its own ``VLLM_PORT``, and vLLM plugins
that would take the server apart kept out.

``dragonhpc`` registers vLLM plugins that switch vLLM's multiprocessing to Dragon's; they are
meant for vLLM running *inside* Dragon's process model and fail in a server that runs as its own
process ("Launch parameter not initialized: GS_RET_QD"), which is how replicas run here, under
Dragon or not. Unless ``VLLM_PLUGINS`` is set (by the config's ``env`` or the caller's
environment), every installed vLLM plugin but those is allowed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache

# vLLM's allow-list needs at least one name; this one matches no plugin.
NO_PLUGIN = "rhapsody-none"


@cache
def allowed_vllm_plugins() -> str | None:
    """``VLLM_PLUGINS`` for a replica, or None when no plugin needs keeping out."""
    from importlib.metadata import entry_points

    allowed, excluded = [], False
    for ep in entry_points(group="vllm.general_plugins"):
        dist = getattr(ep, "dist", None)
        if dist is not None and dist.name == "dragonhpc":
            excluded = True
        else:
            allowed.append(ep.name)
    if not excluded:
        return None
    return ",".join(allowed) or NO_PLUGIN


def replica_env(config_env: Mapping[str, str], vllm_port: int) -> dict[str, str]:
    env = {**config_env, "VLLM_PORT": str(vllm_port)}
    if "VLLM_PLUGINS" not in env and "VLLM_PLUGINS" not in os.environ:
        plugins = allowed_vllm_plugins()
        if plugins is not None:
            env["VLLM_PLUGINS"] = plugins
    return env
