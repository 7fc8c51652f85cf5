"""OpenTelemetry objects, made from the tasks when asked (the SDK is the ``[telemetry]`` extra).

Spans are not created while tasks run: a task already records when it was submitted, started
and ended, so its span is built from it -- for ``read_traces()``, for ``export_as_otlp()`` and,
in batches, for the span processors a user passes (an OTLP exporter, say). Metrics are
recorded into a real ``MeterProvider`` the same way, catching up with the tasks that ended since
the last reading; counters carry ``session_id``, ``backend`` and ``task_type``, never the task's
uid (one time series per task is what makes other tools' telemetry heavy).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .records import TaskInfo, TraceIds, error_type_of, executable_of, extra_attributes
from .records import span_attributes as _span_attributes

if TYPE_CHECKING:
    from ..api.task import BaseTask

INSTALL_HINT = (
    "telemetry needs the OpenTelemetry SDK: pip install 'rhapsody-core[telemetry]' "
    "(or pip install opentelemetry-sdk)"
)


class TelemetryNotInstalledError(ImportError):
    """``start_telemetry()`` without the OpenTelemetry SDK installed."""


def require_sdk() -> None:
    try:
        import opentelemetry.sdk.metrics
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError as exc:
        raise TelemetryNotInstalledError(f"{INSTALL_HINT} ({exc})") from exc


def check_otel_arguments(
    resource: Any, span_processors: Sequence[Any], metric_readers: Sequence[Any]
) -> None:
    """The OpenTelemetry objects a caller passed are what they should be (named if not)."""
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.resources import Resource

    if resource is not None and not isinstance(resource, Resource):
        raise ValueError(
            f"start_telemetry: resource: expected an opentelemetry.sdk.resources.Resource or "
            f"None, got {resource!r}"
        )
    for i, processor in enumerate(span_processors):
        if not all(callable(getattr(processor, m, None)) for m in ("on_end", "shutdown")):
            raise ValueError(
                f"start_telemetry: span_processors[{i}]: expected a span processor "
                f"(BatchSpanProcessor(exporter), say), got {processor!r}"
            )
    for i, reader in enumerate(metric_readers):
        if not isinstance(reader, MetricReader):
            raise ValueError(
                f"start_telemetry: metric_readers[{i}]: expected an "
                f"opentelemetry.sdk.metrics.export.MetricReader, got {reader!r}"
            )


_COUNTER_OF = {"DONE": "tasks_completed", "FAILED": "tasks_failed", "CANCELED": "tasks_canceled"}


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class OtelView:
    """The session's OpenTelemetry resource, meter provider and span building."""

    def __init__(
        self,
        session_id: str,
        ids: TraceIds,
        resource: Any,
        metric_readers: Sequence[Any],
        span_processors: Sequence[Any],
    ) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self.session_id, self.ids = session_id, ids
        self.resource = resource or Resource.create(
            {"service.name": "rhapsody", "session_id": session_id}
        )
        self.scope = InstrumentationScope("rhapsody")
        self._reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(
            metric_readers=[self._reader, *metric_readers], resource=self.resource
        )
        meter = self.meter_provider.get_meter("rhapsody")
        self.counters = {
            name: meter.create_counter(name, description=text)
            for name, text in (
                ("tasks_submitted", "Total tasks submitted"),
                ("tasks_started", "Total tasks started"),
                ("tasks_completed", "Total tasks completed"),
                ("tasks_failed", "Total tasks failed"),
                ("tasks_canceled", "Total tasks canceled"),
            )
        }
        self.running = meter.create_up_down_counter(
            "tasks_running", description="Tasks currently running"
        )
        self.duration = meter.create_histogram(
            "task_duration_seconds", unit="s", description="Task run time in seconds"
        )
        self.gauges = {
            key: meter.create_up_down_counter(name, description=text)
            for key, name, text in (
                ("cpu", "node_cpu_utilization", "Node CPU utilization percent"),
                ("mem", "node_memory_utilization", "Node memory utilization percent"),
                ("gpu", "node_gpu_utilization", "Node GPU utilization percent"),
            )
        }
        self._last_resource: dict[tuple[str, str, str], float] = {}
        self.span_processors = list(span_processors)
        self.session_start: float | None = None
        self.session_end: float | None = None

    # -- metrics ----------------------------------------------------------------------------------

    def count_tasks(
        self,
        submitted: Iterable[BaseTask],
        started: Iterable[BaseTask],
        ended: Sequence[BaseTask],
        ran: bytes | bytearray,
    ) -> None:
        """Add the tasks submitted, started and ended since the last call (``ran[i]``: whether
        ``ended[i]`` was seen running) to the counters, and the ended ones' run times."""
        counts: dict[tuple[str, str, str], int] = {}

        def bump(name: str, task: BaseTask, n: int = 1) -> None:
            key = (name, task.backend or "", type(task).__name__)
            counts[key] = counts.get(key, 0) + n

        for task in submitted:
            bump("tasks_submitted", task)
        for task in started:
            bump("tasks_started", task)
            bump("tasks_running", task)
        for task, was_running in zip(ended, ran, strict=True):
            bump(_COUNTER_OF[task.state.value], task)
            if was_running:
                bump("tasks_running", task, -1)
        self.add_counts(counts)
        self.record_durations(ended)

    def add_counts(self, counts: dict[tuple[str, str, str], int]) -> None:
        """``counts``: (instrument, backend, task_type) -> how many since the last call."""
        for (name, backend, task_type), n in counts.items():
            attributes = {"session_id": self.session_id, "backend": backend, "task_type": task_type}
            if name == "tasks_running":
                self.running.add(n, attributes)
            else:
                self.counters[name].add(n, attributes)

    def record_durations(self, tasks: Iterable[BaseTask]) -> None:
        record = self.duration.record
        for task in tasks:
            started, ended = task.started_at, task.ended_at
            if started is not None and ended is not None:
                attributes = {
                    "session_id": self.session_id,
                    "backend": task.backend or "",
                    "task_type": type(task).__name__,
                }
                record(max(ended - started, 0.0), attributes)

    def record_resource(self, backend: str, node: str, values: dict[str, float | None]) -> None:
        attributes = {"session_id": self.session_id, "backend": backend, "node_id": node}
        for key, value in values.items():
            if value is None:
                continue
            last = self._last_resource.get((key, backend, node), 0.0)
            self.gauges[key].add(value - last, attributes)
            self._last_resource[(key, backend, node)] = value

    def metrics(self) -> Any:
        return self._reader.get_metrics_data()

    # -- spans ------------------------------------------------------------------------------------

    def task_span(self, seq: int, task: BaseTask) -> Any:
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

        ids, flags = self.ids, TraceFlags(TraceFlags.SAMPLED)
        state = task.state.value
        submitted = task.submitted_at or 0.0
        ended = task.ended_at or submitted
        info = TaskInfo(
            task.uid, task.backend or "", type(task).__name__, executable_of(task), submitted
        )
        error_type = error_type_of(task) if state == "FAILED" else None
        attributes = _span_attributes(
            self.session_id,
            info,
            state,
            error_type,
            task.host,
            task.worker,
            task.started_at,
            ended,
            extra_attributes(task),
        )
        if state == "DONE":
            status = Status(StatusCode.OK)
        else:
            status = Status(StatusCode.ERROR, error_type)
        return ReadableSpan(
            name="task",
            context=SpanContext(ids.trace_id, ids.task_span_id(seq), False, flags),
            parent=SpanContext(ids.trace_id, ids.session_span_id, False, flags),
            resource=self.resource,
            attributes=attributes,
            kind=SpanKind.INTERNAL,
            status=status,
            start_time=_ns(submitted),
            end_time=_ns(ended),
            instrumentation_scope=self.scope,
        )

    def session_span(self, now: float) -> Any:
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

        start = self.session_start or now
        return ReadableSpan(
            name="session",
            context=SpanContext(
                self.ids.trace_id, self.ids.session_span_id, False, TraceFlags(TraceFlags.SAMPLED)
            ),
            resource=self.resource,
            attributes={"session_id": self.session_id, "backend": "rhapsody"},
            kind=SpanKind.INTERNAL,
            status=Status(StatusCode.OK if self.session_end is not None else StatusCode.UNSET),
            start_time=_ns(start),
            end_time=_ns(self.session_end) if self.session_end is not None else None,
            instrumentation_scope=self.scope,
        )

    def export_spans(self, spans: Sequence[Any]) -> None:
        """Hand finished spans to the caller's span processors."""
        for processor in self.span_processors:
            for span in spans:
                processor.on_end(span)

    def shutdown(self) -> None:
        for processor in self.span_processors:
            processor.force_flush()
            processor.shutdown()
        self.meter_provider.shutdown()


# -- OTLP/JSON ------------------------------------------------------------------------------------


def _any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [_any_value(v) for v in value]}}
    return {"stringValue": str(value)}


def _key_values(attributes: Any) -> list[dict[str, Any]]:
    return [{"key": str(k), "value": _any_value(v)} for k, v in dict(attributes or {}).items()]


def otlp_json(spans: Sequence[Any], resource: Any) -> str:
    """Spans as an OTLP/JSON ``ExportTraceServiceRequest`` (ids as hex, as OTLP/JSON says;
    what a collector's ``/v1/traces`` and Jaeger/Tempo import accept)."""
    out = []
    for span in spans:
        ctx = span.context
        item: dict[str, Any] = {
            "traceId": f"{ctx.trace_id:032x}",
            "spanId": f"{ctx.span_id:016x}",
            "name": span.name,
            "kind": int(span.kind.value) + 1,  # SDK kinds count from 0, OTLP's from 1
            "startTimeUnixNano": str(span.start_time or 0),
            "endTimeUnixNano": str(span.end_time or 0),
            "attributes": _key_values(span.attributes),
            "status": {"code": int(span.status.status_code.value)},
        }
        if span.status.description:
            item["status"]["message"] = span.status.description
        if span.parent is not None:
            item["parentSpanId"] = f"{span.parent.span_id:016x}"
        out.append(item)
    payload = {
        "resourceSpans": [
            {
                "resource": {"attributes": _key_values(resource.attributes)},
                "scopeSpans": [{"scope": {"name": "rhapsody"}, "spans": out}],
            }
        ]
    }
    return json.dumps(payload)
