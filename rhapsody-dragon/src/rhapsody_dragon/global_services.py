"""Every request this process makes to Dragon's global services goes through here, one at a time.

Global-services requests issued from two threads at once can deadlock (seen at shutdown: a
``kill`` blocked in its queue ``put`` while the reaper sat in ``multi_join`` on the same channel,
forever). So the backend's threads (launchers, dispatcher, reaper, reader, shutdown) hold
:data:`GS_LOCK` around each request, and no request waits inside the lock for long: the reaper
polls exits without waiting and sleeps outside it.
"""

from __future__ import annotations

import contextlib
import copy
import signal
import threading
from typing import Any

GS_LOCK = threading.RLock()
ARGS_IN_REQUEST = 2**17  # Dragon's ARG_IMMEDIATE_LIMIT: a start request's largest arguments


def start_process(process: Any) -> tuple[int, Any]:
    """``process.start()``; its ``(puid, host id)``."""
    with GS_LOCK:
        process.start()
        return process.puid, process._descr.h_uid


def start_group(templates: list[Any]) -> tuple[int, list[tuple[int, Any] | str]]:
    """Start the processes of ``templates`` (``ProcessTemplate``\\ s) in one request: a Dragon
    group. Its id, and for each template ``(puid, host id)`` or why that one did not start.

    One round trip for many processes: started one at a time, each start is a round trip that
    holds :data:`GS_LOCK`, and that rate (~100-300 a second) was the executables' ceiling.
    Each process gets what ``Process.start`` gives it: the global policy (merged with its own:
    but see :func:`fits_in_group`), and for a Python function its arguments in the request.
    """
    from dragon.globalservices.group import create
    from dragon.globalservices.process import get_create_message, get_create_message_with_argdata
    from dragon.infrastructure.policy import Policy

    with GS_LOCK:
        items = []
        default = Policy.global_policy()
        for t in templates:
            policy = default if t.policy is None else Policy.merge(default, t.policy)
            streams = {"stdin": t.stdin, "stdout": t.stdout, "stderr": t.stderr}
            if t.is_python:  # (the options are the template's own: Dragon sets fields of them)
                message = get_create_message_with_argdata(
                    t.target,
                    t.cwd,
                    t.args,
                    t.env,
                    t.argdata,
                    options=copy.copy(t.options),
                    policy=policy,
                    **streams,
                )
            else:
                message = get_create_message(
                    t.target, t.cwd, t.args, t.env, options=t.options, policy=policy, **streams
                )
            items.append((1, message.serialize()))
        group = create(items, None)
    started: list[tuple[int, Any] | str] = []
    for members in group.sets:
        for member in members:
            code = getattr(member.error_code, "value", member.error_code)
            if code in (0, None):
                started.append((int(member.uid), member.desc.h_uid))
            else:
                started.append(str(member.error_info or "it was not created"))
    if len(started) != len(templates):  # not what was asked: stop it all, say so
        destroy_group(int(group.g_uid))
        raise RuntimeError(f"Dragon made a group of {len(started)} for {len(templates)} processes")
    return int(group.g_uid), started


def fits_in_group(template: Any) -> bool:
    """Whether :func:`start_group` may start ``template``.

    Not with a policy of its own: global services evaluate a group's policies outside the guard
    they put around a single process's, and a policy they cannot place (a host name not in the
    allocation) ended the whole Dragon runtime (seen with dragonhpc 0.15; ``Process.start``
    fails that process alone). Not a Python function whose pickled call is larger than a
    request carries (``Process.start`` sends those another way).
    """
    if template.policy is not None:
        return False
    return not template.is_python or len(template.argdata or b"") <= ARGS_IN_REQUEST


def destroy_group(g_uid: int) -> None:
    """Forget group ``g_uid`` (:func:`start_group`) whose processes all exited."""
    from dragon.globalservices.group import destroy

    with GS_LOCK, contextlib.suppress(Exception):
        destroy(g_uid)


def kill_process(puid: int) -> None:
    """SIGKILL Dragon process ``puid`` wherever it runs (gone already: nothing happens)."""
    from dragon.globalservices.process import kill

    with GS_LOCK, contextlib.suppress(Exception):
        kill(puid, sig=signal.SIGKILL, hide_stderr=True)


def exited(puids: list[int]) -> list[tuple[int, int | None]]:
    """Which of ``puids`` exited, with their exit codes; never waits."""
    from dragon.globalservices.process import ProcessError, multi_join, query

    with GS_LOCK:
        try:
            found, _ = multi_join(puids, timeout=0)
            return [(int(p), c) for p, c in found or ()]
        except Exception:  # noqa: BLE001 - one unknown process spoils the list: ask one by one
            gone: list[tuple[int, int | None]] = []
            for puid in puids:
                try:
                    descriptor = query(puid)
                except ProcessError:
                    gone.append((puid, None))
                    continue
                if descriptor.state != descriptor.State.ACTIVE:
                    gone.append((puid, descriptor.ecode))
            return gone


def new_queue(maxsize: int) -> Any:
    from dragon.native.queue import Queue

    with GS_LOCK:
        return Queue(maxsize=maxsize)


def destroy_queue(queue: Any) -> None:
    with GS_LOCK, contextlib.suppress(Exception):
        queue.destroy()
