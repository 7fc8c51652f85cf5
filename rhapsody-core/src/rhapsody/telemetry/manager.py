"""The :class:`TelemetryManager` of a session (rhapsody-py 0.6's API).

It sees every task through the ``rhapsody_tasks_changed`` hook (see :mod:`.plugin`): per change
it appends a record tuple and counts, nothing more. Records go, a batch at a time, to the
checkpoint file's writer processes (:mod:`.checkpoint_file`) and -- when someone subscribed --
to the subscriber thread, which turns them into events. OpenTelemetry spans and metrics are
built from the tasks when read (:mod:`.otel`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .events import BaseEvent, SessionEnded, SessionStarted, event_to_dict, make_event
from .ledger import TaskLedger
from .otel import OtelView, check_otel_arguments, otlp_json, require_sdk
from .records import EventBuilder, TraceIds
from .subscribers import SubscriberDispatch
from .task_views import ended_run_seconds, resource_event, run_time_stats, task_span_dicts

if TYPE_CHECKING:
    from ..api.session import Session
    from ..api.states import TaskState
    from ..api.task import BaseTask
    from .checkpoint_file import CheckpointFile, Totals
    from .sampling import ResourceSample, ResourceSampler

log = logging.getLogger(__name__)


def _positive(name: str, value: object, allow_none: bool) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        expected = "a number > 0" + (" or None" if allow_none else "")
        raise ValueError(f"start_telemetry: {name}: expected {expected}, got {value!r}")
    return float(value)


class TelemetryManager:
    """Events, metrics and spans of one session; made by ``await session.start_telemetry()``.

    Stops by itself when the session closes, after every event reached the checkpoint file and
    the subscribers.
    """

    def __init__(
        self,
        session_id: str,
        checkpoint_interval: float | None = None,
        checkpoint_path: str | os.PathLike[str] | None = None,
        span_processors: Sequence[Any] | None = None,
        metric_readers: Sequence[Any] | None = None,
        resource: Any = None,
        resource_poll_interval: float | None = 5.0,
    ) -> None:
        self._session_id = session_id
        self._session: Session | None = None  # set by start_telemetry
        self._checkpoint_interval = _positive("checkpoint_interval", checkpoint_interval, True)
        self._poll_interval = _positive("resource_poll_interval", resource_poll_interval, True)
        self._checkpoint_dir = os.fspath(checkpoint_path) if checkpoint_path is not None else None
        for name, items in (
            ("span_processors", span_processors),
            ("metric_readers", metric_readers),
        ):
            if items is not None and (
                isinstance(items, (str, bytes)) or not hasattr(items, "__iter__")
            ):
                raise ValueError(f"start_telemetry: {name}: expected a list, got {items!r}")
        self._span_processors = list(span_processors or ())
        self._metric_readers = list(metric_readers or ())
        self._resource = resource
        self.ids = TraceIds.new()
        self._running = False
        self._stopping = False
        self._stopped = False
        self._started_at = 0.0
        self._ended_at: float | None = None
        self._subscribers: list[Callable[[BaseEvent], Any]] = []
        self._dispatch: SubscriberDispatch | None = None
        self._writer: CheckpointFile | None = None
        self._parts = 1  # the file's writer processes: task records go to each its share
        self._run_seconds = (0, 0.0)  # ended tasks summed so far, their run time (the totals)
        self.checkpoint_file: str | None = None
        self._otel: OtelView | None = None
        self._samplers: list[tuple[str, ResourceSampler]] = []
        self._loops: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ledger = TaskLedger()
        self._metered = 0  # ended tasks recorded
        self._exported = 0  # ended tasks handed to the span processors
        self._last_resources: dict[str, dict[str, Any]] = {}
        self._start_event: BaseEvent | None = None

    # -- properties -------------------------------------------------------------------------------

    @property
    def session_id(self) -> str:
        return self._session_id

    # -- life cycle -------------------------------------------------------------------------------

    async def start(self, samplers: Sequence[tuple[str, ResourceSampler]] = ()) -> None:
        """Set up OpenTelemetry, open the checkpoint file and start polling resources."""
        require_sdk()
        if self._running or self._stopped:
            raise RuntimeError("start_telemetry: telemetry of this session was already started")
        self._loop = asyncio.get_running_loop()
        check_otel_arguments(self._resource, self._span_processors, self._metric_readers)
        self._otel = OtelView(
            self._session_id,
            self.ids,
            self._resource,
            self._metric_readers,
            self._span_processors,
        )
        if self._checkpoint_dir is not None:  # last: nothing after it can fail
            self._open_checkpoint()
        self._started_at = time.time()
        self._otel.session_start = self._started_at
        self._dispatch = SubscriberDispatch(EventBuilder(self._session_id, self.ids), self._loop)
        for callback in self._subscribers:
            self._dispatch.add(callback)
        self._running = True
        self._samplers = list(samplers)
        if self._samplers and self._poll_interval is not None:
            self._loops.append(asyncio.ensure_future(self._poll_resources()))
        if self._checkpoint_interval is not None and self._writer is not None:
            self._loops.append(asyncio.ensure_future(self._checkpoints()))
        if self._span_processors or self._metric_readers:
            self._loops.append(asyncio.ensure_future(self._export_periodically()))
        self._start_event = make_event(
            SessionStarted, session_id=self._session_id, backend="rhapsody"
        )
        self.emit(self._start_event)

    def _open_checkpoint(self) -> None:
        from .checkpoint_file import open_checkpoint

        assert self._checkpoint_dir is not None
        self._writer = open_checkpoint(
            self._checkpoint_dir, self._session_id, self.ids.as_tuple(), asyncio.get_running_loop()
        )
        self.checkpoint_file = self._writer.path
        self._parts = self._writer.parts

    async def stop(self, timeout: float = 60.0) -> None:
        """Emit ``SessionEnded``, deliver every event, complete the file. Idempotent."""
        if not self._running:
            return
        # The flag ends the loops even where a cancel is lost (asyncio.wait_for in Python 3.11
        # drops a cancel that arrives as its awaitable finishes: a poll loop then ran on and
        # held close() for the whole shutdown_timeout).
        self._stopping = True
        for loop_task in self._loops:
            loop_task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        if self._writer is not None:  # every task's lines before the session's end (its last)
            await self._writer.finish_tasks(timeout)
        for _, sampler in self._samplers:
            try:  # in a thread: stopping a remote sampler may wait on its runtime
                async with asyncio.timeout(timeout):
                    await asyncio.to_thread(sampler.close)
            except Exception:
                log.exception("resource sampler %r failed to close", sampler)
        self._ended_at = time.time()
        self.emit(
            make_event(
                SessionEnded,
                session_id=self._session_id,
                backend="rhapsody",
                duration_seconds=self._ended_at - self._started_at,
            )
        )
        self._running, self._stopped = False, True
        otel = self._otel
        assert otel is not None
        otel.session_end = self._ended_at
        writer, dispatch = self._writer, self._dispatch
        if writer is not None:
            writer.send(["Z", self._started_at, self._ended_at])
        if self._metric_readers:  # theirs get the final figures; ours are made when read
            self._sync_metrics()
        self._export_spans(final=True)
        closing = []
        if writer is not None:
            closing.append(writer.close(timeout, self._totals))
        if dispatch is not None:
            closing.append(asyncio.to_thread(dispatch.close, timeout))
        results = await asyncio.gather(*closing)
        if dispatch is not None:
            await dispatch.wait_async(timeout)
        if not all(results):
            log.error("telemetry of session %s did not finish cleanly", self._session_id)
        with contextlib.suppress(Exception):
            otel.shutdown()

    # -- the session's tasks (called by the plugin) -----------------------------------------------

    def on_changes(self, tasks: Sequence[BaseTask], states: Sequence[TaskState]) -> None:
        if not self._running:
            return
        outs: list[list[Any]] = [[] for _ in range(self._parts)]  # task i's to writer i % parts
        dispatch = self._dispatch
        writer = self._writer
        if dispatch is not None and dispatch.subscribers:  # per-task records: their events
            self._ledger.one_by_one(tasks, states, outs)
            if writer is not None:
                writer.send_tasks(outs)
            out = outs[0] if len(outs) == 1 else [value for part in outs for value in part]
            if out:
                dispatch.put(out)
            return
        shared = outs[0] if len(outs) == 1 else []  # starts and ends: for every writer
        self._ledger.in_columns(tasks, states, outs, shared, writer is not None)
        if writer is not None:
            writer.send_tasks(outs, None if shared is outs[0] else shared)

    # -- public API -------------------------------------------------------------------------------

    def emit(self, event: BaseEvent) -> None:
        """Send an event of your own (see ``define_event``) to the file and the subscribers."""
        if not isinstance(event, BaseEvent):
            raise TypeError(f"emit: event: expected a telemetry event, got {event!r}")
        if not self._running:
            return
        if self._writer is not None:
            data = event_to_dict(event)
            span = self.ids.session_span_id
            task = None
            if event.task_id is not None and self._session is not None:
                task = self._session.tasks.get(event.task_id)
            if task is not None and task in self._ledger.seq:
                span = self.ids.task_span_id(self._ledger.seq[task])
            data.update(trace_id=hex(self.ids.trace_id), span_id=hex(span), name=event.event_type)
            self._writer.send(["V", data])
        if self._dispatch is not None and self._dispatch.subscribers:
            self._dispatch.put([], [event])

    def subscribe(self, callback: Callable[[BaseEvent], Any]) -> None:
        """Call ``callback(event)`` for every event from now on: a sync callable on telemetry's
        dispatch thread, an async one on the session's event loop. One that raises is logged."""
        if not callable(callback):
            raise TypeError(f"subscribe: callback: expected a callable, got {callback!r}")
        self._subscribers.append(callback)
        if self._dispatch is not None:
            # Subscribed right after start_telemetry: it gets the session's start too.
            early = self._running and not self._ledger.counts["submitted"]
            self._dispatch.add(callback, [self._start_event] if early and self._start_event else ())

    def read_metrics(self) -> Any:
        """The OpenTelemetry ``MetricsData`` now (None before start)."""
        if self._otel is None:
            return None
        self._sync_metrics()
        return self._otel.metrics()

    def read_traces(self) -> tuple[Any, ...]:
        """Every finished span (OpenTelemetry ``ReadableSpan``): the session's and one per
        ended task, in the order they ended."""
        otel = self._otel
        if otel is None:
            return ()
        spans = [otel.task_span(seq, task) for seq, task in self._ended_pairs()]
        if self._ended_at is not None:
            spans.append(otel.session_span(self._ended_at))
        return tuple(spans)

    def export_as_otlp(self, path: str | os.PathLike[str] | None = None) -> str:
        """The finished spans as OTLP/JSON; written to ``path`` too when given."""
        if self._otel is None:
            raise RuntimeError("export_as_otlp: telemetry was not started")
        text = otlp_json(self.read_traces(), self._otel.resource)
        if path is not None:
            target = os.fspath(path)
            os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
            with open(target, "w", encoding="utf-8") as fh:
                fh.write(text)
        return text

    def task_count(self) -> dict[str, int]:
        counts = self._ledger.counts
        return {
            "submitted": counts["submitted"],
            "completed": counts["DONE"],
            "failed": counts["FAILED"],
            "canceled": counts["CANCELED"],
            "running": len(self._ledger.running),
        }

    def task_spans(self) -> list[dict[str, Any]]:
        """One plain dict per ended task: task_id, backend, executable, task_type, status,
        duration_seconds (submitted to ended), span_id, trace_id (and error_type)."""
        return task_span_dicts(self.ids, self._ended_pairs())

    def session_duration(self) -> float:
        if not self._started_at:
            return 0.0
        end = self._ended_at if self._ended_at is not None else time.time()
        return round(end - self._started_at, 6)

    def summary(self) -> dict[str, Any]:
        """Task counts, run-time statistics, session duration and the latest resource reading
        per backend and node, as plain values."""
        return {
            "session_id": self._session_id,
            "duration_seconds": self.session_duration(),
            "tasks": self.task_count(),
            "duration": run_time_stats(self._ledger.ended_tasks),
            "resources": dict(self._last_resources),
        }

    # -- catching up ------------------------------------------------------------------------------

    def _ended_pairs(self, start: int = 0) -> Iterator[tuple[int, BaseTask]]:
        return zip(self._ledger.ended_seqs[start:], self._ledger.ended_tasks[start:], strict=True)

    def _totals(self) -> Totals:
        """The session's figures of a metric snapshot, for the first of several writers."""
        counts, ended = self._ledger.counts, len(self._ledger.ended_tasks)
        summed, run_seconds = self._run_seconds
        run_seconds += ended_run_seconds(self._ledger.ended_tasks[summed:])
        self._run_seconds = (ended, run_seconds)
        started = self._ledger.ended_ran.count(1) + len(self._ledger.running)
        return (
            counts["submitted"],
            started,
            counts["DONE"],
            counts["FAILED"],
            counts["CANCELED"],
            ended,
            run_seconds,
        )

    def _sync_metrics(self) -> None:
        """Record into the meter provider what happened since the last call."""
        otel = self._otel
        if otel is None:
            return
        submitted, started = self._ledger.unmetered_submitted, self._ledger.unmetered_started
        self._ledger.unmetered_submitted, self._ledger.unmetered_started = [], []
        start = self._metered
        new = self._ledger.ended_tasks[start:]
        ran = self._ledger.ended_ran[start:]
        self._metered = start + len(new)
        otel.count_tasks(submitted, started, new, ran)

    def _export_spans(self, final: bool = False) -> None:
        otel = self._otel
        if otel is None or not otel.span_processors:
            return
        start = self._exported
        self._exported = len(self._ledger.ended_tasks)
        spans = [otel.task_span(seq, task) for seq, task in self._ended_pairs(start)]
        if final and self._ended_at is not None:
            spans.append(otel.session_span(self._ended_at))
        otel.export_spans(spans)

    async def _export_periodically(self, every: float = 1.0) -> None:
        while not self._stopping:
            await asyncio.sleep(every)
            try:
                self._export_spans()
                if self._metric_readers:
                    self._sync_metrics()
            except Exception:
                log.exception("exporting telemetry failed")

    async def _checkpoints(self) -> None:
        assert self._checkpoint_interval is not None
        while not self._stopping:
            await asyncio.sleep(self._checkpoint_interval)
            if self._writer is not None:
                self._writer.snapshot(time.time(), self._totals)

    async def _poll_resources(self) -> None:
        assert self._poll_interval is not None
        while not self._stopping:
            for backend, sampler in self._samplers:
                try:
                    async with asyncio.timeout(self._poll_interval * 4):
                        samples = await sampler.sample()
                except Exception as exc:  # noqa: BLE001 - one sampler's failure skips one poll
                    log.warning("resource sampler of backend %r failed: %r", backend, exc)
                    continue
                for sample in samples:
                    try:
                        self._resource_event(backend, sample)
                    except Exception:  # one odd sample is skipped, not every later poll
                        log.exception("a resource sample of backend %r was dropped", backend)
            await asyncio.sleep(self._poll_interval)

    def _resource_event(self, backend: str, sample: ResourceSample) -> None:
        event, reading = resource_event(self._session_id, backend, sample)
        if reading is not None:
            self._last_resources[f"{backend}/{sample.node_id}"] = reading
            if self._otel is not None:
                self._otel.record_resource(
                    backend,
                    sample.node_id,
                    {
                        "cpu": sample.cpu_percent,
                        "mem": sample.memory_percent,
                        "gpu": sample.gpu_percent,
                    },
                )
        self.emit(event)
