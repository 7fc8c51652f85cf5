"""Every code block of the user guide runs: python and bash blocks execute, toml blocks parse."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks():
    for page in sorted(DOCS.glob("*.md")):
        for i, match in enumerate(BLOCK.finditer(page.read_text())):
            yield pytest.param(match.group(1), match.group(2), id=f"{page.stem}-{i}")
    # The README's Python example too (its shell blocks are the quick start that CI runs).
    for i, match in enumerate(BLOCK.finditer((ROOT / "README.md").read_text())):
        if match.group(1) == "python":
            yield pytest.param("python", match.group(2), id=f"README-{i}")


def test_the_guide_has_code():
    assert len(list(blocks())) >= 10


@pytest.mark.parametrize(("language", "code"), list(blocks()))
def test_code_block(language, code, tmp_path):
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
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.stdout.strip(), "a guide example should show its result"
    # examples leave no stray files behind (capture_stdio output lives in the session dir)
    assert all(p.name.startswith("session.") or p.name == "example.py" for p in tmp_path.iterdir())
