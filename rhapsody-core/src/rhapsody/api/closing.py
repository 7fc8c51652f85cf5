"""The bounded steps of a session's start and close: the backends' starts, each backend's
shutdown, then the plugins' closing hooks. At close each gets ``shutdown_timeout`` seconds; what
takes longer or fails is logged and left, never raised (closing must reach its end)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..backends.base import Backend

log = logging.getLogger("rhapsody.api.session")


async def start_backends(backends: list[Backend], timeout: float) -> None:
    """Initialise the backends together. When one fails, the others' starts get ``timeout``
    more seconds to settle before its error is raised: a backend still starting could not be
    shut down (a close would find nothing to stop, and it would come up after)."""
    starts = [asyncio.ensure_future(b._ensure_initialized()) for b in backends]
    if not starts:
        return
    done, pending = await asyncio.wait(starts, return_when=asyncio.FIRST_EXCEPTION)
    failed = [s for s in starts if s in done and (s.cancelled() or s.exception() is not None)]
    if not failed:
        return
    if pending:
        _, late = await asyncio.wait(pending, timeout=timeout)
        for start in late:
            name = backends[starts.index(start)].name
            log.error("backend %r was still starting %ss after another one failed", name, timeout)
    for start in starts:  # every error retrieved: only the first is raised
        if start.done() and not start.cancelled():
            start.exception()
    if failed[0].cancelled():
        raise asyncio.CancelledError(f"backend {backends[starts.index(failed[0])].name!r}")
    error = failed[0].exception()
    assert error is not None
    raise error


async def shut_down_backends(backends: Iterable[Backend], timeout: float) -> None:
    """Shut every backend down, one after the other, each within ``timeout`` seconds."""
    for backend in backends:
        try:
            # asyncio.timeout, not wait_for: in Python 3.11 wait_for can lose a cancel
            async with asyncio.timeout(timeout):
                await backend.shutdown()
        except TimeoutError:
            log.error("backend %r did not shut down within %ss", backend.name, timeout)
        except Exception as exc:  # noqa: BLE001 - shut down the others regardless
            log.error("backend %r failed to shut down: %s", backend.name, exc)


async def await_closing_hooks(hook: Any, session: Any, timeout: float) -> None:
    """Call ``rhapsody_session_closing`` and wait (``timeout`` seconds) for what it returned."""
    try:
        pending = [
            asyncio.ensure_future(a)
            for a in hook.rhapsody_session_closing(session=session)
            if a is not None
        ]
    except Exception:  # a plugin's bug must not keep the session open
        log.exception("a rhapsody plugin's session-closing hook raised")
        return
    if not pending:
        return
    done, late = await asyncio.wait(pending, timeout=timeout)
    for fut in late:
        fut.cancel()
        log.error("a plugin did not finish closing within %ss", timeout)
    for fut in done:
        if not fut.cancelled() and fut.exception() is not None:
            log.error("a plugin failed while the session closed: %r", fut.exception())
