"""``rhapsody report FILE --plot out.png``: the run at a glance (matplotlib, the ``[plot]`` extra).

Three panels on one time axis: a timeline with one lane per worker (a bar per task, coloured by
state; beyond ``DETAIL_LIMIT`` tasks each lane shows how busy it was per time slice instead,
with failures marked), the number of running tasks and the completion rate, and the CPU / GPU
utilisation the resource samples recorded. ``.png``, ``.svg`` and ``.html`` (an SVG in a page).
"""

from __future__ import annotations

import heapq
import io
import os
from collections import defaultdict

from .report import Checkpoint, ReportError, TaskRow

DETAIL_LIMIT = 3000  # tasks drawn one bar each; more are aggregated per lane and time slice
MAX_LANES = 40
SLICES = 300
COLOURS = {"completed": "#2e7d32", "failed": "#c62828", "canceled": "#9e9e9e"}


def lanes_of(rows: list[TaskRow]) -> dict[str, list[TaskRow]]:
    """Tasks by worker; workers that ran one task each (a process per executable) are packed
    into as few "process slot" lanes per host as their overlaps allow."""
    lanes: dict[str, list[TaskRow]] = defaultdict(list)
    for r in rows:
        lanes[r.lane].append(r)
    single = [name for name, tasks in lanes.items() if len(tasks) == 1]
    if len(single) <= 10:
        return lanes
    by_host: dict[str, list[TaskRow]] = defaultdict(list)
    for name in single:
        (task,) = lanes.pop(name)
        by_host[name.split(" / ")[0] if " / " in name else "?"].append(task)
    for host, tasks in by_host.items():
        slots: list[tuple[float, int]] = []  # (end, slot) heap
        count = 0
        for task in sorted(tasks, key=lambda t: t.started if t.started is not None else t.ended):
            start = task.started if task.started is not None else task.ended
            if slots and slots[0][0] <= start:
                _, slot = heapq.heappop(slots)
            else:
                slot, count = count, count + 1
            heapq.heappush(slots, (task.ended, slot))
            lanes[f"{host} / process slot {slot:02d}"].append(task)
    return lanes


def plot(data: Checkpoint, target: str) -> str:
    """Draw ``data`` into ``target`` (format from its extension); returns the path."""
    ext = os.path.splitext(target)[1].lower()
    if ext not in (".png", ".svg", ".html"):
        raise ReportError(
            f"rhapsody report: --plot: expected a .png, .svg or .html path, got {target!r}"
        )
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ReportError(
            "rhapsody report: --plot needs matplotlib: pip install 'rhapsody-core[plot]'"
        ) from exc
    rows = data.tasks
    if not rows:
        raise ReportError("rhapsody report: --plot: no task ended in this file; nothing to draw")
    t0 = min(r.submitted for r in rows)
    t1 = max(r.ended for r in rows)
    span = max(t1 - t0, 1e-6)
    lanes = lanes_of(rows)
    names = sorted(lanes, key=lambda n: (-len(lanes[n]), n))
    hidden = len(names) - MAX_LANES
    names = sorted(names[:MAX_LANES])
    fig, (ax_lanes, ax_load, ax_res) = plt.subplots(
        3,
        1,
        figsize=(12, 3 + 0.22 * len(names) + 4),
        sharex=True,
        gridspec_kw={"height_ratios": [max(len(names), 4) * 0.22 + 1, 1.6, 1.6]},
    )
    detailed = len(rows) <= DETAIL_LIMIT
    if detailed:
        for y, name in enumerate(names):
            for status, colour in COLOURS.items():
                least = span / (2000 if status == "completed" else 300)  # failures stay visible
                bars = [
                    (
                        (r.started if r.started is not None else r.ended) - t0,
                        max(r.ended - (r.started if r.started is not None else r.ended), least),
                    )
                    for r in lanes[name]
                    if r.status == status
                ]
                if bars:
                    ax_lanes.broken_barh(bars, (y - 0.4, 0.8), facecolors=colour)
    else:
        import numpy as np

        width = span / SLICES
        busy = np.zeros((len(names), SLICES))
        fx: list[float] = []
        fy: list[int] = []
        for y, name in enumerate(names):
            for r in lanes[name]:
                start = (r.started if r.started is not None else r.ended) - t0
                end = r.ended - t0
                a, b = int(start / width), min(int(end / width), SLICES - 1)
                if a == b:
                    busy[y, a] += end - start
                else:
                    busy[y, a] += (a + 1) * width - start
                    busy[y, a + 1 : b] += width
                    busy[y, b] += end - b * width
                if r.status == "failed" and len(fx) < 5000:
                    fx.append(end)
                    fy.append(y)
        ax_lanes.imshow(
            np.clip(busy / width, 0, 1),
            aspect="auto",
            cmap="Greens",
            vmin=0,
            vmax=1,
            extent=(0, span, len(names) - 0.5, -0.5),
            interpolation="nearest",
        )
        if fx:
            ax_lanes.scatter(fx, fy, s=6, c=COLOURS["failed"], marker="|", label="failed")
    ax_lanes.set_yticks(range(len(names)))
    ax_lanes.set_yticklabels([n[-40:] for n in names], fontsize=7)
    ax_lanes.set_ylim(len(names) - 0.5, -0.5)
    title = f"session {data.session_id or '?'}: {len(rows):,} tasks"
    if hidden > 0:
        title += f" ({hidden} busiest lanes beyond {MAX_LANES} not shown)"
    if not detailed:
        title += " -- shade: share of each time slice a lane was busy"
    ax_lanes.set_title(title, fontsize=10)
    from matplotlib.patches import Rectangle

    handles = [Rectangle((0, 0), 1, 1, color=c) for c in COLOURS.values()]
    ax_lanes.legend(handles, list(COLOURS), loc="upper right", fontsize=7)
    # running tasks and completion rate
    edges = sorted(
        [(r.started - t0, 1) for r in rows if r.started is not None]
        + [(r.ended - t0, -1) for r in rows if r.started is not None]
    )
    xs, ys, level = [0.0], [0], 0
    for x, d in edges:
        level += d
        xs.append(x)
        ys.append(level)
    ax_load.step(xs, ys, where="post", color="#1565c0", label="running")
    ax_load.set_ylabel("running", fontsize=8)
    bins = 60
    counts = [0] * bins
    for r in rows:
        counts[min(int((r.ended - t0) / span * bins), bins - 1)] += 1
    rate = ax_load.twinx()
    rate.plot(
        [(i + 0.5) * span / bins for i in range(bins)],
        [c / (span / bins) for c in counts],
        color="#ef6c00",
        label="ended/s",
    )
    rate.set_ylabel("ended per s", fontsize=8)
    # resources
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for item in data.resources:
        t = item.get("event_time")
        if not isinstance(t, (int, float)):
            continue
        node = str(item.get("node_id"))
        if item.get("gpu_id") is not None:
            if isinstance(item.get("gpu_percent"), (int, float)):
                series[f"{node} gpu{item['gpu_id']}"].append((t - t0, item["gpu_percent"]))
        elif isinstance(item.get("cpu_percent"), (int, float)):
            series[f"{node} cpu"].append((t - t0, item["cpu_percent"]))
    for label, points in sorted(series.items())[:12]:
        points.sort()
        ax_res.plot([p[0] for p in points], [p[1] for p in points], label=label)
    if series:
        ax_res.legend(fontsize=7, loc="upper right")
    else:
        ax_res.text(
            0.5,
            0.5,
            "no resource samples in this file",
            ha="center",
            va="center",
            transform=ax_res.transAxes,
            fontsize=8,
        )
    ax_res.set_ylabel("utilisation %", fontsize=8)
    ax_res.set_ylim(0, 105)
    ax_res.set_xlabel("seconds since the first submission")
    ax_res.set_xlim(0, span)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    if ext == ".html":
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg")
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(
                "<!doctype html><html><head><meta charset='utf-8'>"
                f"<title>RHAPSODY session {data.session_id or ''}</title></head><body>"
                + buffer.getvalue()[buffer.getvalue().find("<svg") :]
                + "</body></html>\n"
            )
    else:
        fig.savefig(target, dpi=110)
    plt.close(fig)
    return target
