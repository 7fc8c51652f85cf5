"""``rhapsody report RUN.telemetry.jsonl``: what a checkpoint file says, summarised.

The file is read once, streaming; a task's numbers come from its span line (one per ended
task), so the five event lines per task are only counted, not parsed -- that is what keeps a
1M-task file under half a minute. A truncated last line (a run that crashed) is reported and
the rest summarised; a file that is not a telemetry checkpoint is refused with the reason.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from typing import Any

import attrs

from ..cli.render import table


class ReportError(ValueError):
    """The file cannot be summarised (missing, empty, not a telemetry checkpoint)."""


@attrs.define
class TaskRow:
    backend: str
    task_type: str
    status: str
    lane: str
    submitted: float
    started: float | None
    ended: float
    error: str | None


@attrs.define
class Checkpoint:
    """What a checkpoint file holds, as plain data (the report and the plot use it)."""

    path: str
    session_id: str | None = None
    tasks: list[TaskRow] = attrs.field(factory=list)
    submitted_events: int = 0
    started_events: int = 0
    resources: list[dict[str, Any]] = attrs.field(factory=list)
    metrics: dict[str, Any] = attrs.field(factory=dict)
    session_start: float | None = None
    session_end: float | None = None
    truncated: str | None = None
    bad_lines: int = 0

    @property
    def unfinished(self) -> int:
        return max(self.submitted_events - len(self.tasks), 0)


def _lane(attributes: dict[str, Any]) -> str:
    host, worker = attributes.get("host"), attributes.get("worker")
    if host and worker:
        return f"{host} / {worker}"
    return str(worker or host or attributes.get("backend") or "?")


def load(path: str) -> Checkpoint:
    """Read a checkpoint file (see the module's docstring for what is refused)."""
    if not os.path.exists(path):
        raise ReportError(f"rhapsody report: {path}: no such file")
    if os.path.isdir(path):
        raise ReportError(
            f"rhapsody report: {path}: expected a .telemetry.jsonl file, got a directory"
        )
    data = Checkpoint(path=path)
    rows = data.tasks
    recognised = 0
    with open(path, "rb") as fh:
        number = 0
        for number, raw in enumerate(fh, 1):
            line = raw.rstrip(b"\n")
            if not line:
                continue
            # The bulk: task event lines, counted by a substring test, not parsed.
            if line.endswith(b'"section": "event"}') and b'"event_type": "Task' in line[:120]:
                recognised += 1
                head = line[:120]
                if b'"TaskSubmitted"' in head:
                    data.submitted_events += 1
                elif b'"TaskStarted"' in head:
                    data.started_events += 1
                continue
            try:
                item = json.loads(line)
            except ValueError:
                if not raw.endswith(b"\n"):
                    data.truncated = f"line {number} is cut short (the run did not finish?)"
                else:
                    data.bad_lines += 1
                continue
            if not isinstance(item, dict) or "section" not in item:
                data.bad_lines += 1
                continue
            recognised += 1
            section = item["section"]
            if section == "span":
                attributes = item.get("attributes") or {}
                if item.get("name") == "task":
                    start, end = item.get("start_time_s"), item.get("end_time_s")
                    if start is None or end is None:
                        continue
                    run = attributes.get("run_seconds")
                    started = end - run if isinstance(run, (int, float)) else None
                    status = str(attributes.get("status", "?"))
                    error = None
                    if status == "failed":
                        error = str(attributes.get("error") or attributes.get("error_type") or "?")
                    rows.append(
                        TaskRow(
                            backend=str(attributes.get("backend", "?")),
                            task_type=str(attributes.get("task_type", "?")),
                            status=status,
                            lane=_lane(attributes),
                            submitted=float(start),
                            started=started,
                            ended=float(end),
                            error=error,
                        )
                    )
                elif item.get("name") == "session":
                    data.session_start = item.get("start_time_s")
                    data.session_end = item.get("end_time_s")
            elif section == "event":
                etype = item.get("event_type")
                data.session_id = data.session_id or item.get("session_id")
                if etype == "ResourceUpdate":
                    data.resources.append(item)
                elif etype == "TaskSubmitted":
                    data.submitted_events += 1
                elif etype == "TaskStarted":
                    data.started_events += 1
                elif etype == "SessionStarted" and data.session_start is None:
                    data.session_start = item.get("event_time")
                elif etype == "SessionEnded":
                    data.session_end = item.get("event_time")
            elif section == "metric":
                data.metrics = item
    if number == 0:
        raise ReportError(f"rhapsody report: {path}: the file is empty")
    if not recognised:
        raise ReportError(
            f"rhapsody report: {path}: not a RHAPSODY telemetry checkpoint (no line has a "
            "'section' of event, metric or span)"
        )
    return data


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _seconds(value: float) -> str:
    if value != value:  # NaN
        return "-"
    if value < 1e-3:
        return f"{value * 1e6:.0f}µs"
    if value < 1:
        return f"{value * 1e3:.1f}ms"
    return f"{value:.2f}s"


def summarise(data: Checkpoint, buckets: int = 10) -> str:
    """The terminal report."""
    out: list[str] = []
    rows = data.tasks
    first = min((r.submitted for r in rows), default=data.session_start or 0.0)
    last = max((r.ended for r in rows), default=data.session_end or first)
    start = data.session_start or first
    end = data.session_end or last
    out.append(f"session {data.session_id or '?'}  ({data.path})")
    out.append(
        f"{len(rows):,} tasks ended in {_seconds(max(end - start, 0.0))}"
        + (f"; {data.unfinished:,} submitted tasks never ended" if data.unfinished else "")
    )
    if data.truncated:
        out.append(f"warning: {data.truncated}; what precedes it is summarised")
    if data.bad_lines:
        out.append(f"warning: {data.bad_lines} lines could not be read and were skipped")
    # states by backend
    by: Counter[tuple[str, str]] = Counter((r.backend, r.status) for r in rows)
    states = sorted({s for _, s in by})
    backends = sorted({b for b, _ in by})
    if rows:
        out += ["", "tasks by backend and state"]
        out.append(
            table(
                ["backend", *states, "total"],
                [
                    [
                        b,
                        *(f"{by[(b, s)]:,}" for s in states),
                        f"{sum(by[(b, s)] for s in states):,}",
                    ]
                    for b in backends
                ],
            )
        )
    # latency
    groups: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(
        lambda: {"run": [], "queue": [], "total": []}
    )
    for r in rows:
        g = groups[(r.backend, r.task_type)]
        g["total"].append(r.ended - r.submitted)
        if r.started is not None:
            g["run"].append(r.ended - r.started)
            g["queue"].append(max(r.started - r.submitted, 0.0))
    if groups:
        out += [
            "",
            "latency per backend and task kind (queue: submitted to started; run: to ended)",
        ]
        table_rows = []
        for (b, kind), g in sorted(groups.items()):
            run, queue = sorted(g["run"]), sorted(g["queue"])
            table_rows.append(
                [
                    b,
                    kind,
                    f"{len(g['total']):,}",
                    *(_seconds(_percentile(run, q)) for q in (50, 95, 99)),
                    _seconds(sum(queue) / len(queue)) if queue else "-",
                    _seconds(sum(run) / len(run)) if run else "-",
                ]
            )
        out.append(
            table(
                [
                    "backend",
                    "kind",
                    "tasks",
                    "run p50",
                    "run p95",
                    "run p99",
                    "queue mean",
                    "run mean",
                ],
                table_rows,
            )
        )
    # throughput over time
    if rows and last > first:
        width = (last - first) / buckets
        counts = [0] * buckets
        for r in rows:
            counts[min(int((r.ended - first) / width), buckets - 1)] += 1
        peak = max(counts) or 1
        out += ["", f"throughput over time ({_seconds(width)} per line)"]
        for i, c in enumerate(counts):
            out.append(
                f"  +{_seconds(i * width):>8}  {'#' * round(30 * c / peak):<30} {c / width:,.1f}/s"
            )
    # failures
    reasons = Counter(r.error for r in rows if r.error is not None)
    if reasons:
        out += ["", "most frequent failure reasons"]
        for reason, n in reasons.most_common(5):
            out.append(f"  {n:>7,}  {reason[:160]}")
    # resources
    nodes: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for item in data.resources:
        key = (
            str(item.get("backend")),
            str(item.get("node_id"))
            + (f" gpu{item['gpu_id']}" if item.get("gpu_id") is not None else ""),
        )
        for field in ("cpu_percent", "memory_percent", "gpu_percent"):
            value = item.get(field)
            if isinstance(value, (int, float)):
                nodes[key][field].append(float(value))
    if nodes:
        out += ["", "resource utilisation (mean / max over the samples)"]
        table_rows = []
        for (b, node), values in sorted(nodes.items()):
            cells = []
            for field in ("cpu_percent", "memory_percent", "gpu_percent"):
                v = values.get(field)
                cells.append(f"{sum(v) / len(v):.0f}% / {max(v):.0f}%" if v else "-")
            table_rows.append([b, node, *cells])
        out.append(table(["backend", "node", "cpu", "memory", "gpu"], table_rows))
    return "\n".join(out)
