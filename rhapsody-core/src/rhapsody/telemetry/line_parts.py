"""The pieces the checkpoint file's lines are made of: numbers as JSON, and the JSON that the
tasks of one kind, or of one place, share (made once, repeated in each of their lines).

Shared by the per-record formatting (:mod:`.lines`) and the per-column one (:mod:`.column_lines`);
imported by the writer process, so it stays light.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import compress
from json.encoder import encode_basestring_ascii as _q
from typing import Any

U64 = (1 << 64) - 1
U60 = (1 << 60) - 1


def _numbers_by_repr(values: tuple[float | int, ...]) -> list[str]:
    """JSON of finite numbers, as ``json.dumps`` writes them."""
    return list(map(repr, values))


try:  # orjson (the telemetry extra) formats floats ~6x faster than repr: ~5 per task here
    from orjson import dumps as _orjson_dumps

    def _numbers_by_orjson(values: tuple[float | int, ...]) -> list[str]:
        """JSON of finite numbers (ints within 64 bits): the same values ``repr`` gives, in
        orjson's spelling (``0.00005`` for ``5e-05``), in one call."""
        return _orjson_dumps(values).decode()[1:-1].split(",")

    def _number_by_orjson(value: float) -> str:
        return _orjson_dumps(value).decode()

    numbers_text: Callable[[tuple[float | int, ...]], list[str]] = _numbers_by_orjson
    number_text: Callable[[float], str] = _number_by_orjson
except ImportError:  # pragma: no cover - the extra is installed wherever tests run
    numbers_text, number_text = _numbers_by_repr, repr


def num(value: float | None) -> str:
    if value is None:
        return "null"
    if value.__class__ is not float and value.__class__ is not int:
        # a number of another type (a backend's NumPy float: its repr is "np.float64(...)")
        try:
            value = float(value)
        except (TypeError, ValueError, OverflowError):
            return "null"
    text = repr(value)
    # nan/inf are not JSON; an int (a test's clock, say) is fine as it is
    return text if text[-1].isdigit() else "null"


def scaled(value: float, scale: float, spec: str) -> str:
    """``value * scale`` in ``spec`` (``"%d"``, ``"%.3f"``), or null if it is not a number."""
    try:
        scaled = value * scale
        return spec % scaled if scaled - scaled == 0 else "null"
    except (TypeError, ValueError, OverflowError):
        return "null"


# the last hex digit of a task's five event ids: its number's low bit, then the event's kind
NIBBLES: tuple[tuple[str, ...], ...] = (("0", "1", "2", "3", "4"), ("8", "9", "a", "b", "c"))


class Kind:
    """JSON one kind of task (backend, task type, executable) repeats in each of its lines."""

    __slots__ = ("backend", "exe", "span_task_id", "task_id")

    def __init__(self, sid: str, backend: str | None, task_type: str, exe: str) -> None:
        self.backend = "null" if backend is None else _q(backend)  # (no backend: null)
        self.exe = f'"executable": {_q(exe)}, "task_type": {_q(task_type)}'
        # what comes between an event's emit time (or a span's attributes' start) and task id
        self.task_id = f', "session_id": {sid}, "backend": {self.backend}, "task_id": '
        self.span_task_id = "{" + self.task_id[2:]


_PLACE_TYPES = {str, type(None)}


def known_only(keys: Sequence[Any], *columns: Sequence[Any]) -> list[list[Any]]:
    """``keys`` and ``columns`` without the places where ``keys`` holds None (a task the
    session or a writer does not know)."""
    known = [key is not None for key in keys]
    return [list(compress(column, known)) for column in (keys, *columns)]


def place_texts(values: Sequence[Any]) -> Sequence[str | None]:
    """Hosts or workers as text or None (a backend may give a pid, or a list): every writer
    formats them as JSON strings, and keys its cache by them."""
    if set(map(type, values)) <= _PLACE_TYPES:  # the usual case: one C-level pass
        return values
    return [value if value is None or value.__class__ is str else str(value) for value in values]


class Where:
    """JSON of where a task ran (host, worker): few, and repeated by every task."""

    __slots__ = ("event_worker", "node", "span_where")

    def __init__(self, host: str | None, worker: str | None) -> None:
        self.node = "null" if host is None else _q(host)
        self.event_worker = "" if worker is None else f', "worker": {_q(worker)}'
        self.span_where = ("" if host is None else f', "host": {self.node}') + self.event_worker
