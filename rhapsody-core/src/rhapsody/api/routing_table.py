"""Session-side routing: explicit names, the ``rhapsody_route_task`` hook, compatibility checks.

Every task of a batch is routed before any is submitted, so an unknown backend name or a task that
no backend accepts raises :class:`SessionError` with nothing half-submitted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import SessionError, task_label
from .task import BaseTask

if TYPE_CHECKING:
    from ..backends.base import Backend
    from .session import Session


class RoutingTable:
    """Resolves the backend of each task for one session."""

    def __init__(self, session: Session, backends: Mapping[str, Backend], route_hook: Any) -> None:
        self._session = session
        self._backends = backends
        self._hook = route_hook
        # Only the built-in rule is registered: its answer depends on the task type alone.
        self._default_only = len(route_hook.get_hookimpls()) <= 1
        self._by_type: dict[type, Backend] = {}
        self._compatible: dict[type, list[Backend]] = {}

    def compatible(self, task: BaseTask) -> list[Backend]:
        cls = type(task)
        found = self._compatible.get(cls)
        if found is None:
            found = [b for b in self._backends.values() if b.accepts(task)]
            self._compatible[cls] = found
        return found

    def route(self, task: BaseTask) -> Backend:
        """The backend ``task`` goes to; raises :class:`SessionError` when there is none."""
        name = task.backend
        if name is not None:
            backend = self._backends.get(name)
            if backend is None:
                raise SessionError(
                    f"{task_label(task.uid)}: backend {name!r} is not in this session; "
                    f"available backends: {sorted(self._backends)}"
                )
            if not backend.accepts(task):
                raise SessionError(
                    f"{task_label(task.uid)}: backend {name!r} ({backend.kind}) cannot run a "
                    f"{type(task).__name__}"
                )
            return backend
        if self._default_only:
            backend = self._by_type.get(type(task))
            if backend is not None:
                return backend
        candidates = self.compatible(task)
        if not candidates:
            kinds = {b.name: b.kind for b in self._backends.values()}
            raise SessionError(
                f"{task_label(task.uid)}: no backend in this session accepts a "
                f"{type(task).__name__} "
                f"(backends: {kinds or 'none'}); add a compatible backend or set backend="
            )
        chosen = self._hook(task=task, backends=candidates, session=self._session)
        backend = self._backends.get(chosen) if isinstance(chosen, str) else None
        if backend is None or backend not in candidates:
            raise SessionError(
                f"{task_label(task.uid)}: the routing hook chose {chosen!r}, which is "
                f"not a compatible "
                f"backend of this session ({[b.name for b in candidates]})"
            )
        if self._default_only:
            self._by_type[type(task)] = backend
        return backend

    def invalidate(self) -> None:
        """Forget cached decisions (after the session's backends changed)."""
        self._by_type.clear()
        self._compatible.clear()


def group_by_backend(pairs: Sequence[tuple[BaseTask, Backend]]) -> dict[Backend, list[BaseTask]]:
    groups: dict[Backend, list[BaseTask]] = {}
    for task, backend in pairs:
        group = groups.get(backend)
        if group is None:
            groups[backend] = group = []
        group.append(task)
    return groups
