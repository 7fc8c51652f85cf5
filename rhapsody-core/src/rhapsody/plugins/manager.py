"""Plugin discovery: the ``rhapsody`` entry-point group, allow/block lists, the backend registry.

A plugin that fails to import (or to declare its backends) is skipped with a logged reason and
listed as unavailable; it never breaks the other plugins.

Backend classes published the rhapsody-py way -- ``name = "module:Class"`` in the
``rhapsody.backends`` entry-point group -- are discovered too (see :mod:`rhapsody.compat.registry`).

Environment variables (comma-separated entry-point names):

* ``RHAPSODY_LOAD_PLUGINS`` -- load only these plugins;
* ``RHAPSODY_BLOCK_PLUGINS`` -- never load these plugins.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Iterable
from typing import Any

import pluggy

from . import hookspecs, routing
from .entry_point_scan import FoundEntryPoint, entry_points_of
from .markers import LEGACY_ENTRY_POINT_GROUP, PROJECT_NAME
from .registry import BackendInfo, BackendSpec, class_ref

ENTRY_POINT_GROUP = PROJECT_NAME
ENV_LOAD = "RHAPSODY_LOAD_PLUGINS"
ENV_BLOCK = "RHAPSODY_BLOCK_PLUGINS"

log = logging.getLogger(__name__)


def _importable(module: str) -> bool:
    """Whether ``module`` could be imported (found on the path; nothing is imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _names_from_env(variable: str) -> set[str] | None:
    raw = os.environ.get(variable)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


class PluginHost:
    """Owns the pluggy manager and the registry of backends the plugins declare."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.pm.register(routing, name="rhapsody.routing")
        self._backends: dict[str, BackendInfo] = {}
        self._aliases: dict[str, str] = {}  # alias -> backend name
        self._failed: dict[str, BackendInfo] = {}
        self._entry_points_loaded = False
        self.blocked: set[str] = set()  # entry points skipped by the allow/block lists
        self._lock = threading.RLock()

    # -- discovery --------------------------------------------------------------------------------

    def load_entry_points(self) -> None:
        """Load every allowed plugin of the ``rhapsody`` entry-point group (once)."""
        with self._lock:
            if self._entry_points_loaded:
                return
            self._entry_points_loaded = True
            allow, block = _names_from_env(ENV_LOAD), _names_from_env(ENV_BLOCK)
            found = entry_points_of(ENTRY_POINT_GROUP, LEGACY_ENTRY_POINT_GROUP)
            for ep in found[ENTRY_POINT_GROUP]:
                if (allow is not None and ep.name not in allow) or (block and ep.name in block):
                    log.debug("rhapsody plugin %r not loaded (allow/block list)", ep.name)
                    self.blocked.add(ep.name)
                    continue
                self._load_entry_point(ep)
            for ep in found[LEGACY_ENTRY_POINT_GROUP]:
                if (allow is not None and ep.name not in allow) or (block and ep.name in block):
                    self.blocked.add(ep.name)
                    continue
                if ep.name in self._backends or ep.name in self._aliases:
                    continue  # a plugin of the rhapsody group provides it already
                from ..compat.registry import load_legacy_entry_point

                load_legacy_entry_point(self, ep)

    def _load_entry_point(self, ep: FoundEntryPoint) -> None:
        dist = ep.dist.name if ep.dist else None
        version = ep.dist.version if ep.dist else None
        if self.pm.has_plugin(ep.name):
            return
        try:
            plugin = ep.load()
        except Exception as exc:  # noqa: BLE001 - any import failure disables only this plugin
            self._mark_failed(ep.name, dist, version, f"{type(exc).__name__}: {exc}")
            return
        self._register(plugin, ep.name, dist, version)

    def register(self, plugin: Any, name: str | None = None) -> None:
        """Register a plugin object or module at run time (its backends join the registry)."""
        with self._lock:
            self.load_entry_points()
            plugin_name = name or getattr(plugin, "__name__", None) or repr(plugin)
            self._register(plugin, plugin_name, None, None)

    def unregister(self, name: str) -> None:
        """Remove a plugin registered under ``name`` and the backends it declared."""
        with self._lock:
            self.pm.unregister(name=name)
            for key in [k for k, info in self._backends.items() if info.plugin == name]:
                self._forget(key)
            self._failed.pop(name, None)

    def _register(self, plugin: Any, name: str, dist: str | None, version: str | None) -> None:
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # noqa: BLE001 - a malformed plugin disables only itself
            self._mark_failed(name, dist, version, f"{type(exc).__name__}: {exc}")
            return
        for impl in self.pm.hook.rhapsody_register_backends.get_hookimpls():
            if impl.plugin_name != name:
                continue
            try:
                declared: Any = impl.function()
                specs: list[Any] = (
                    [declared] if isinstance(declared, BackendSpec) else list(declared or ())
                )
                for spec in specs:
                    if not isinstance(spec, BackendSpec):
                        raise TypeError(f"expected BackendSpec, got {spec!r}")
            except Exception as exc:  # noqa: BLE001
                self.pm.unregister(name=name)
                self._mark_failed(name, dist, version, f"{type(exc).__name__}: {exc}")
                return
            for spec in specs:
                self._add_backend(spec, name, dist, version)

    def add_backend(
        self,
        spec: BackendSpec,
        plugin: str,
        dist: str | None = None,
        version: str | None = None,
        *,
        replace: bool = False,
    ) -> None:
        """Add one backend to the registry (``replace=True``: even over another of that name)."""
        with self._lock:
            if replace:
                self._forget(spec.name)
            self._add_backend(spec, plugin, dist, version)

    def _forget(self, name: str) -> None:
        info = self._backends.pop(name, None)
        if info is not None:
            for alias in info.aliases:
                self._aliases.pop(alias, None)
        self._aliases.pop(name, None)
        self._failed.pop(name, None)

    def mark_failed(
        self, plugin: str, reason: str, dist: str | None = None, version: str | None = None
    ) -> None:
        """Record that ``plugin`` (or the backend of that name) could not be loaded, and why."""
        with self._lock:
            self._mark_failed(plugin, dist, version, reason)

    def _add_backend(
        self, spec: BackendSpec, plugin: str, dist: str | None, version: str | None
    ) -> None:
        existing = self._backends.get(spec.name)
        ref = class_ref(spec.cls)
        if existing is not None and existing.ref != ref:
            log.warning(
                "rhapsody backend %r from plugin %r ignored: plugin %r already provides it",
                spec.name,
                plugin,
                existing.plugin,
            )
            return
        missing = [m for m in spec.requires if not _importable(m)]
        self._backends[spec.name] = BackendInfo(
            name=spec.name,
            kind=spec.kind,
            class_name=ref.rpartition(":")[2].rpartition(".")[2],
            plugin=plugin,
            distribution=dist,
            version=version,
            available=not missing,
            reason=f"needs {', '.join(missing)}, which is not installed" if missing else None,
            cls=None if isinstance(spec.cls, str) else spec.cls,
            aliases=spec.aliases,
            ready=spec.ready,
            ref=ref,
        )
        for alias in spec.aliases:
            self._aliases.setdefault(alias, spec.name)

    def _mark_failed(self, plugin: str, dist: str | None, version: str | None, reason: str) -> None:
        log.warning("rhapsody plugin %r skipped: %s", plugin, reason)
        self._failed[plugin] = BackendInfo(
            name=plugin,
            kind=None,
            class_name=None,
            plugin=plugin,
            distribution=dist,
            version=version,
            available=False,
            reason=reason,
        )

    # -- queries ----------------------------------------------------------------------------------

    def backends(self) -> dict[str, BackendInfo]:
        """Every discovered backend by name, then every plugin that failed to load."""
        self.load_entry_points()
        return {
            **self._backends,
            **{k: v for k, v in self._failed.items() if k not in self._backends},
        }

    def find(self, name: str) -> BackendInfo | None:
        """The backend called ``name`` (or aliased so), or the failed plugin of that name."""
        self.load_entry_points()
        found = self._backends.get(name) or self._backends.get(self._aliases.get(name, ""))
        return found or self._failed.get(name)

    def available(self, kind: str | None = None) -> Iterable[BackendInfo]:
        self.load_entry_points()
        return [b for b in self._backends.values() if kind is None or b.kind == kind]

    def failed(self) -> dict[str, BackendInfo]:
        self.load_entry_points()
        return dict(self._failed)


_host: PluginHost | None = None
_host_lock = threading.Lock()


def get_plugin_host() -> PluginHost:
    """The process-wide plugin host (created, and entry points loaded, on first use)."""
    global _host
    if _host is None:
        with _host_lock:
            if _host is None:
                host = PluginHost()
                host.load_entry_points()
                _host = host
    return _host


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide pluggy manager of the ``rhapsody`` namespace."""
    return get_plugin_host().pm


def register(plugin: Any, name: str | None = None) -> None:
    """Register a plugin (a module or object with ``@hookimpl`` functions) at run time."""
    get_plugin_host().register(plugin, name)


def unregister(name: str) -> None:
    """Remove a plugin registered with :func:`register`."""
    get_plugin_host().unregister(name)


def reset_plugin_host() -> None:
    """Forget every plugin and rediscover on next use (for tests and long-lived tools)."""
    global _host
    with _host_lock:
        _host = None
