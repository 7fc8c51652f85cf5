"""Runs the code blocks of the user guide: python and bash execute, toml parses."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)

# Pages about a sibling distribution are tested with that distribution installed.
PAGES_OF = {
    "dask": ["dask-backend.md"],
    "dragon": ["dragon-backend.md"],
    "vllm": ["vllm-backend.md"],
}


def core_pages() -> list[Path]:
    others = {name for pages in PAGES_OF.values() for name in pages}
    return [p for p in sorted(DOCS.glob("*.md")) if p.name not in others]


def blocks(pages: list[Path]) -> Iterator[object]:
    for page in pages:
        for i, match in enumerate(BLOCK.finditer(page.read_text())):
            yield pytest.param(match.group(1), match.group(2), id=f"{page.stem}-{i}")


def _session_members(sid: int, field: int = 3) -> list[int]:
    """Live processes of session ``sid`` (what an example started and did not stop); with
    ``field=2``, of process group ``sid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[field]) == sid:
                found.append(int(entry))
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")[:120]
    except OSError:
        return "?"


def run_block(
    language: str,
    code: str,
    tmp_path: Path,
    launcher: str | None = None,
    staged: dict[str, Path] | None = None,
    env_extra: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
) -> str:
    """Run one block; python blocks through ``launcher`` (e.g. ``dragon``) when given, with
    command-line ``args`` (as the page tells a reader to run it).

    ``staged`` files (name -> path) are linked into the example's directory first, as the files
    a reader has beside the script (a model, a simulation script).
    """
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.update(env_extra or {})
    for name, source in (staged or {}).items():
        (tmp_path / name).symlink_to(source)
    if language == "python":
        script = tmp_path / "example.py"
        script.write_text(code)
        cmd = [sys.executable, str(script), *args]
        if launcher is not None:
            cmd = [str(Path(sys.executable).parent / launcher), str(script), *args]
    elif language == "bash":
        cmd = ["bash", "-euo", "pipefail", "-c", code]
    elif language == "toml":
        tomllib.loads(code)
        return ""
    else:
        pytest.fail(f"code block in an unknown language {language!r}: tests cannot run it")
    # Its own session, so that whatever the example starts can be found (and must be gone).
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Dragon's launcher hangs without a controlling terminal: its own process group instead
        start_new_session=launcher is None,
        process_group=0 if launcher is not None else None,
    )
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"example did not finish in 300 s\nstdout:\n{stdout}\nstderr:\n{stderr}")
    deadline = time.monotonic() + 10  # processes already exiting get a moment to finish
    while (
        left := _session_members(proc.pid, 3 if launcher is None else 2)
    ) and time.monotonic() < deadline:
        time.sleep(0.1)
    names = {pid: _cmdline(pid) for pid in left}
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 0, f"stdout:\n{stdout}\nstderr:\n{stderr}"
    assert not left, f"the example left processes running: {names}"
    assert stdout.strip(), "a guide example should show its result"
    if language == "python":  # examples leave nothing behind but the session directory
        keep = {"example.py", *(staged or {})}
        left = [p.name for p in tmp_path.iterdir() if p.name not in keep]
        assert all(name.startswith("session.") for name in left), left
    return stdout
