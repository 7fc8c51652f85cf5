"""``Session(progress=...)``: a live bar where a person watches, silence elsewhere."""

from __future__ import annotations

import sys
import types

import pytest

from rhapsody import ComputeTask, Session
from rhapsody.api import SessionError
from rhapsody.backends import ConcurrentExecutionBackend
from rhapsody.telemetry.progress import SessionProgress


def fails() -> None:
    raise ValueError("no")


async def run(progress) -> list[ComputeTask]:
    tasks = [ComputeTask(executable="/bin/true") for _ in range(30)] + [ComputeTask(function=fails)]
    async with Session(backends=[ConcurrentExecutionBackend()], progress=progress) as session:
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
    return tasks


async def test_silent_when_nobody_watches(capsys) -> None:
    await run(True)  # stderr is not a terminal here
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


async def test_always_prints_plain_lines(capsys) -> None:
    await run("always")
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and all(line.startswith("[") for line in lines)  # no carriage returns
    assert "31/31 done 30 failed 1 canceled 0 running 0" in lines[-1]


def test_bad_progress_value_is_refused() -> None:
    with pytest.raises(SessionError, match=r"Session.progress: expected True, False or 'always'"):
        Session(progress="sometimes")


def test_jupyter_gets_an_updating_display(monkeypatch) -> None:
    shown: list[tuple[str, str]] = []

    class Handle:
        def update(self, data, raw):
            shown.append(("update", data["text/plain"]))

    def display(data, raw, display_id):
        shown.append(("display", data["text/plain"]))
        return Handle()

    class ZMQInteractiveShell:  # what a Jupyter kernel's shell is called
        pass

    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: ZMQInteractiveShell()  # type: ignore[attr-defined]
    ipython_display = types.ModuleType("IPython.display")
    ipython_display.display = display  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", ipython_display)

    class NotATerminal:
        def isatty(self) -> bool:
            return False

    bar = SessionProgress(True, stream=NotATerminal())  # type: ignore[arg-type]
    assert bar.style == "jupyter"
    from rhapsody.api import TaskState

    task = ComputeTask(executable="/bin/true")
    bar.on_changes([task] * 3, [TaskState.SUBMITTED] * 3)
    bar._last = 0.0
    bar.on_changes([task], [TaskState.DONE])
    assert [kind for kind, _ in shown] == ["display", "update"]
    assert "1/3 done 1" in shown[-1][1]


def test_a_terminal_gets_one_redrawn_line() -> None:
    class Terminal:
        def __init__(self) -> None:
            self.text = ""

        def isatty(self) -> bool:
            return True

        def write(self, s: str) -> None:
            self.text += s

        def flush(self) -> None:
            pass

    from rhapsody.api import TaskState

    term = Terminal()
    bar = SessionProgress(True, stream=term)  # type: ignore[arg-type]
    task = ComputeTask(executable="/bin/true")
    bar.on_changes([task] * 2, [TaskState.SUBMITTED] * 2)
    bar._last = 0.0
    bar.on_changes([task, task], [TaskState.RUNNING, TaskState.DONE])
    assert term.text.startswith("\r[") and "\n" not in term.text
    assert "1/2 done 1" in term.text
