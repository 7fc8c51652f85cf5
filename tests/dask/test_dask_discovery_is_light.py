"""Finding backends imports none of this distribution's heavy dependencies (they load when the
backend is first used), so `import rhapsody; rhapsody.discover_backends()` stays fast."""

from __future__ import annotations

from ..conftest import discovery_imports


def test_discovery_imports_no_heavy_dependency() -> None:
    imported, available = discovery_imports(("distributed", "dask"))
    assert imported == [], f"discovery imported {imported}"
    assert "dask" in available
