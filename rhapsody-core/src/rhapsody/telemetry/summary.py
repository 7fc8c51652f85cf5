"""The text of ``rhapsody report``: what a loaded checkpoint (:func:`.report.load`) says --
tasks by state and backend, run-time percentiles per backend and task kind, queue wait against
run time, throughput over time, the most frequent failures, resource use."""

from __future__ import annotations

from collections import Counter, defaultdict

from ..cli.render import table
from .report import Checkpoint


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
