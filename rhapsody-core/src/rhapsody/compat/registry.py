"""rhapsody-py's backend registry: ``BackendRegistry`` and the ``rhapsody.backends`` group.

rhapsody-py publishes backends as classes in the ``rhapsody.backends`` entry-point group
(``dask = "rhapsody.backends.execution.dask_parallel:DaskExecutionBackend"``) and registers
others at run time with ``BackendRegistry.register_backend(name, cls_or_import_path)``. Both
end up in RHAPSODY's one registry (:class:`~rhapsody.plugins.PluginHost`): a RHAPSODY backend
class as itself, a rhapsody-py backend class through :func:`~.legacy_backend.adapter_class`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..plugins.markers import LEGACY_ENTRY_POINT_GROUP
from ..plugins.registry import BackendSpec

if TYPE_CHECKING:
    from ..plugins.entry_point_scan import FoundEntryPoint
    from ..plugins.manager import PluginHost


def spec_for_class(name: str, cls: Any) -> BackendSpec:
    """The registry entry for backend class ``cls`` registered as ``name`` (either contract)."""
    # Imported here: discovery imports this module, and must not import the task API.
    from ..backends.base import Backend
    from .legacy_backend import adapter_class, is_legacy_backend, legacy_kind

    if isinstance(cls, type) and issubclass(cls, Backend):
        return BackendSpec(name=name, cls=cls, kind=cls.kind)  # type: ignore[arg-type]
    if isinstance(cls, type) and is_legacy_backend(cls):
        return BackendSpec(name=name, cls=adapter_class(cls), kind=legacy_kind(cls))  # type: ignore[arg-type]
    raise TypeError(
        f"backend {name!r}: expected a backend class (a rhapsody Backend, or a class following "
        f"rhapsody-py's BaseBackend contract), got {cls!r}"
    )


def load_legacy_entry_point(host: PluginHost, ep: FoundEntryPoint) -> None:
    """Register the backend class an entry point of the ``rhapsody.backends`` group names."""
    dist = ep.dist.name if ep.dist else None
    version = ep.dist.version if ep.dist else None
    try:
        spec = spec_for_class(ep.name, ep.load())
    except Exception as exc:  # noqa: BLE001 - a broken entry point disables only itself
        host.mark_failed(ep.name, f"{type(exc).__name__}: {exc}", dist, version)
        return
    host.add_backend(spec, f"{LEGACY_ENTRY_POINT_GROUP}:{ep.name}", dist, version)


def _host() -> PluginHost:
    from ..plugins.manager import get_plugin_host

    return get_plugin_host()


class BackendRegistry:
    """rhapsody-py's registry of backend classes by name, over RHAPSODY's plugin registry."""

    _pending: ClassVar[dict[str, str]] = {}  # name -> "module.Class" not imported yet

    @classmethod
    def _resolve_pending(cls, name: str | None = None) -> None:
        names = [name] if name is not None else list(cls._pending)
        for key in names:
            path = cls._pending.pop(key, None)
            if path is None:
                continue
            module, _, attr = path.rpartition(".")
            try:
                import importlib

                backend_cls = getattr(importlib.import_module(module), attr)
                _host().add_backend(
                    spec_for_class(key, backend_cls), "BackendRegistry", replace=True
                )
            except Exception as exc:  # noqa: BLE001 - listed as unavailable, with the reason
                _host().mark_failed(key, f"could not import {path!r}: {type(exc).__name__}: {exc}")

    @classmethod
    def register_backend(cls, name: str, backend_class: type | str) -> None:
        """Register ``backend_class`` (a class, or ``"module.Class"`` imported on first use)
        as ``name``, replacing any backend of that name."""
        if type(name) is not str or not name.isidentifier():
            raise ValueError(f"register_backend.name: expected an identifier, got {name!r}")
        if isinstance(backend_class, str):
            cls._pending[name] = backend_class
            return
        cls._pending.pop(name, None)
        _host().add_backend(spec_for_class(name, backend_class), "BackendRegistry", replace=True)

    @classmethod
    def get_backend_class(cls, backend_name: str) -> type:
        """The class registered as ``backend_name`` (for a rhapsody-py backend: its own class)."""
        from ..backends.lookup import missing_backend_error

        cls._resolve_pending(backend_name)
        info = _host().find(backend_name)
        if info is None or not info.available:
            raise missing_backend_error(backend_name)
        backend = info.backend_class()
        found: type = getattr(backend, "legacy_class", backend)
        return found

    @classmethod
    def list_backends(cls) -> list[str]:
        """Names of the registered backends (available or not)."""
        cls._resolve_pending()
        return list(_host().backends())

    @classmethod
    def discover_backends(cls) -> dict[str, bool]:
        """Each registered backend name -> whether it can be used."""
        cls._resolve_pending()
        return {name: bool(info) for name, info in _host().backends().items()}
