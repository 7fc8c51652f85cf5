"""Discovery reads entry points itself (importlib.metadata is slow to import): the same answer,
whatever the path holds, and discovery imports neither the task API nor importlib.metadata."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from rhapsody.plugins.entry_point_scan import entry_points_of

from ..conftest import discovery_imports

GROUPS = ("rhapsody", "rhapsody.backends", "console_scripts", "pytest11")


View = dict[str, list[tuple[str, str, str | None, str | None]]]


def _row(ep: Any) -> tuple[str, str, str | None, str | None]:
    return ep.name, ep.value, ep.dist and ep.dist.name, ep.dist and ep.dist.version


def _importlib_view(*groups: str) -> View:
    from importlib.metadata import entry_points

    return {group: sorted(map(_row, entry_points(group=group))) for group in groups}


def _our_view(*groups: str) -> View:
    return {group: sorted(map(_row, eps)) for group, eps in entry_points_of(*groups).items()}


def _dist_info(root: Path, name: str, version: str, entry_points: str) -> None:
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nA description: not a header\n"
    )
    (info / "entry_points.txt").write_text(entry_points)


def test_the_installed_entry_points_are_what_importlib_metadata_finds() -> None:
    ours = _our_view(*GROUPS)
    assert ours == _importlib_view(*GROUPS)
    assert any(name == "concurrent" for name, *_ in ours["rhapsody"])


def test_the_first_distribution_of_a_name_on_the_path_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _dist_info(first, "rh-shadow", "2.0", "[rhapsody]\nshadow = first.plugin\n")
    _dist_info(second, "rh_shadow", "1.0", "[rhapsody]\nshadow = second.plugin\n")
    _dist_info(
        second,
        "rh-other",
        "0.3",
        "# a comment\n[console_scripts]\nx = y:z\n\n[rhapsody]\n  # another\n"
        "other = other.plugin:hooks [extra]\n",
    )
    monkeypatch.setattr(sys, "path", [str(first), str(tmp_path / "missing"), str(second)])
    found = _our_view("rhapsody")
    assert found == _importlib_view("rhapsody")
    assert found["rhapsody"] == [
        ("other", "other.plugin:hooks [extra]", "rh-other", "0.3"),
        ("shadow", "first.plugin", "rh-shadow", "2.0"),
    ]


def test_a_zip_on_the_path_is_read_through_importlib_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("rh_zipped-1.0.dist-info/METADATA", "Name: rh-zipped\nVersion: 1.0\n\n")
        zf.writestr("rh_zipped-1.0.dist-info/entry_points.txt", "[rhapsody]\nzipped = z.plugin\n")
    monkeypatch.setattr(sys, "path", [str(archive), *sys.path])
    found = _our_view("rhapsody")
    assert ("zipped", "z.plugin", "rh-zipped", "1.0") in found["rhapsody"]
    assert found == _importlib_view("rhapsody")


def test_an_entry_point_loads_the_object_it_names() -> None:
    from rhapsody.plugins.entry_point_scan import FoundEntryPoint

    ep = FoundEntryPoint("x", "os.path:join [extra]", "rhapsody", None)
    import os.path

    assert ep.load() is os.path.join
    assert FoundEntryPoint("m", "os.path", "rhapsody", None).load() is os.path


def test_discovery_imports_neither_the_task_api_nor_importlib_metadata() -> None:
    # The test plugins (one per contract) import the task API as a third party may; ours do not.
    legacy = "example,example_broken,legacy_queue,legacy_sloppy,legacy_broken"
    imported, available = discovery_imports(
        ("asyncio", "rhapsody.api", "importlib.metadata", "rhapsody.backends.concurrent.backend"),
        env={"RHAPSODY_BLOCK_PLUGINS": legacy},
    )
    assert imported == [], f"discovery imported {imported}"
    assert "concurrent" in available


def test_lazy_packages_still_answer_their_names_and_submodules() -> None:
    # rhapsody.plugins and rhapsody.telemetry import their names on first use (the telemetry
    # writer's process needs none); what they exported, and `package.submodule` after
    # `import package`, still work in a fresh interpreter
    code = (
        "import rhapsody.plugins as p, rhapsody.telemetry as t, rhapsody\n"
        "assert 'rhapsody.plugins.manager' not in __import__('sys').modules\n"
        "from rhapsody.plugins import hookimpl, get_plugin_host, BackendInfo\n"
        "from rhapsody.telemetry import TelemetryManager, LocalNodeSampler, TaskCompleted\n"
        "assert p.manager.get_plugin_host is get_plugin_host\n"
        "assert t.manager.TelemetryManager is TelemetryManager and rhapsody.api.Session\n"
        "assert {'hookimpl', 'TelemetryManager'} <= set(dir(p)) | set(dir(t))\n"
        "try:\n"
        "    p.no_such_name\n"
        "except AttributeError as exc:\n"
        "    assert 'no_such_name' in str(exc)\n"
        "else:\n"
        "    raise AssertionError('no AttributeError')\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.stdout.strip() == "ok", out.stderr
