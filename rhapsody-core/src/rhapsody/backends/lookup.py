"""Name-based access to registered backend classes, with install hints for first-party ones."""

from __future__ import annotations

from typing import Any

from ..api.errors import RhapsodyError

# First-party backends that live in sibling distributions: class name -> (distribution, extra).
FIRST_PARTY: dict[str, tuple[str, str]] = {
    "DaskExecutionBackend": ("rhapsody-dask", "dask"),
    "DragonExecutionBackend": ("rhapsody-dragon", "dragon"),
    "DragonExecutionBackendV3": ("rhapsody-dragon", "dragon"),
    "DragonVllmInferenceBackend": ("rhapsody-vllm", "vllm"),
    "VllmInferenceBackend": ("rhapsody-vllm", "vllm"),
}


class BackendNotInstalledError(ImportError, RhapsodyError):
    """A backend class was asked for whose plugin is not installed or failed to load.

    An ``ImportError``, so ``from rhapsody.backends import X`` fails with the install hint.
    """


def backend_class(class_name: str, kind: str | None, module: str) -> type[Any]:
    """The registered backend class called ``class_name`` (of ``kind``, when given)."""
    from ..plugins.manager import get_plugin_host

    host = get_plugin_host()
    for info in host.available(kind):
        if info.class_name == class_name and info.cls is not None:
            return info.cls
    if class_name in FIRST_PARTY:
        dist, extra = FIRST_PARTY[class_name]
        if extra in host.blocked:
            raise BackendNotInstalledError(
                f"{class_name} is installed ({dist}) but its plugin {extra!r} is not loaded: "
                "see the RHAPSODY_LOAD_PLUGINS / RHAPSODY_BLOCK_PLUGINS environment variables",
                name=class_name,
            )
        failure = host.failed().get(extra)
        if failure is not None:
            raise BackendNotInstalledError(
                f"{class_name} is unavailable: its plugin {extra!r} ({dist}) failed to load: "
                f"{failure.reason}",
                name=class_name,
            )
        raise BackendNotInstalledError(
            f"{class_name} is provided by the {dist!r} distribution, which is not installed: "
            f"pip install 'rhapsody-core[{extra}]' (or pip install {dist})",
            name=class_name,
        )
    raise BackendNotInstalledError(
        f"module {module!r} has no backend {class_name!r}; `rhapsody backends` lists the "
        "installed ones",
        name=class_name,
    )


def backend_class_names(kind: str | None) -> list[str]:
    from ..plugins.manager import get_plugin_host

    return sorted(i.class_name for i in get_plugin_host().available(kind) if i.class_name)
