"""A checkpoint file of N made-up tasks, written as the writer process writes them (for timing
``rhapsody report`` on runs larger than this machine can make quickly)."""

from __future__ import annotations

import os
import sys
import time

from rhapsody.telemetry.lines import CheckpointLines
from rhapsody.telemetry.records import TraceIds


def write_checkpoint(directory: str, n: int, workers: int = 64) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "synthetic.telemetry.jsonl")
    lines = CheckpointLines("session.synthetic", TraceIds.new())
    t0 = time.time() - n * 1e-4
    with open(path, "w", encoding="utf-8") as fh:
        out: list[str] = []
        batch: list[tuple] = []
        for seq in range(n):
            t = t0 + seq * 1e-4
            worker = f"thread w{seq % workers}"
            batch.append(("S", seq, f"task.{seq:07d}", "concurrent", "ComputeTask", "f", t))
            batch.append(("R", seq, t + 1e-3, "node1", worker))
            state = "FAILED" if seq % 997 == 0 else "DONE"
            error = "ValueError" if state == "FAILED" else None
            extra = {"error": "ValueError: bad"} if error else None
            batch.append(("E", seq, state, t + 3e-3, t + 1e-3, "node1", worker, error, extra))
            if len(batch) > 3000:
                lines.add_all(batch, t, out)
                batch.clear()
            if len(out) > 50000:
                fh.write("\n".join(out) + "\n")
                out.clear()
        lines.add_all(batch, time.time(), out)
        out.append(lines.metric_line(time.time()))
        fh.write("\n".join(out) + "\n")
    return path


if __name__ == "__main__":
    print(write_checkpoint(sys.argv[1], int(sys.argv[2])))
