"""Runs the code blocks of the user guide: python and bash execute, toml parses."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)

# Pages about a sibling distribution are tested with that distribution installed.
PAGES_OF = {"dask": ["dask-backend.md"]}


def core_pages() -> list[Path]:
    others = {name for pages in PAGES_OF.values() for name in pages}
    return [p for p in sorted(DOCS.glob("*.md")) if p.name not in others]


def blocks(pages: list[Path]) -> Iterator[object]:
    for page in pages:
        for i, match in enumerate(BLOCK.finditer(page.read_text())):
            yield pytest.param(match.group(1), match.group(2), id=f"{page.stem}-{i}")


def run_block(language: str, code: str, tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    if language == "python":
        script = tmp_path / "example.py"
        script.write_text(code)
        cmd = [sys.executable, str(script)]
    elif language == "bash":
        cmd = ["bash", "-euo", "pipefail", "-c", code]
    elif language == "toml":
        tomllib.loads(code)
        return
    else:
        pytest.fail(f"code block in an unknown language {language!r}: tests cannot run it")
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.stdout.strip(), "a guide example should show its result"
    if language == "python":  # examples leave nothing behind but the session directory
        left = [p.name for p in tmp_path.iterdir() if p.name != "example.py"]
        assert all(name.startswith("session.") for name in left), left
