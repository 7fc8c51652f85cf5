"""Finding backends imports none of this distribution's heavy dependencies (they load when the
backend is first used), so `import rhapsody; rhapsody.discover_backends()` stays fast."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "aiohttp",
    "vllm",
    "dragon",
)


def test_discovery_imports_no_heavy_dependency() -> None:
    code = (
        "import sys, rhapsody\n"
        "found = rhapsody.discover_backends()\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
        "print(sorted(n for n, i in found.items() if i.available))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    imported, available = out.stdout.strip().splitlines()
    assert imported == "[]", f"discovery imported {imported}"
    assert "vllm" in available
