"""The entry points of one group, read straight from the installed distributions' metadata.

:func:`importlib.metadata.entry_points` answers the same question, but importing it costs
~80 ms (email, zipfile, pathlib, csv...) and it builds every distribution's metadata, while
discovery runs at the start of every workflow. This reads only the ``entry_points.txt`` file of
each ``*.dist-info``/``*.egg-info`` directory on ``sys.path``, in path order, the first
distribution of a name winning (as in importlib.metadata). Where the path holds something this
does not read -- a zip file, a finder other than the standard one that publishes distributions
-- it hands over to importlib.metadata, so the answer is always the same.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Iterator
from typing import Any, NamedTuple

_METADATA_SUFFIXES = (".dist-info", ".egg-info")
_EXTRAS = re.compile(r"\s*\[.*\]\s*$")


class Distribution(NamedTuple):
    """The distribution an entry point came from: its name and version as its metadata says."""

    name: str
    version: str


class FoundEntryPoint(NamedTuple):
    """One entry point: ``name = value`` in ``group``; ``load()`` imports what it names."""

    name: str
    value: str
    group: str
    dist: Distribution | None

    def load(self) -> Any:
        module, _, attribute = _EXTRAS.sub("", self.value).partition(":")
        found: Any = importlib.import_module(module.strip())
        for part in attribute.strip().split(".") if attribute.strip() else ():
            found = getattr(found, part)
        return found


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _read_distribution(metadata_dir: str) -> Distribution | None:
    """Name and version from the headers of METADATA (PKG-INFO for egg-info)."""
    name = version = None
    for file_name in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(metadata_dir, file_name), encoding="utf-8") as file:
                for line in file:
                    if not line.strip():
                        break  # end of the headers
                    key, sep, value = line.partition(":")
                    if sep and key == "Name":
                        name = value.strip()
                    elif sep and key == "Version":
                        version = value.strip()
        except OSError:
            continue
        break
    return Distribution(name, version) if name and version else None


def _parse(text: str, group: str) -> Iterator[tuple[str, str]]:
    """``(name, value)`` of each entry of ``[group]`` in an entry_points.txt."""
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] == "#":  # as importlib.metadata reads it
            continue
        if line[0] == "[" and line[-1] == "]":
            current = line[1:-1].strip()
            continue
        if current == group:
            name, sep, value = line.partition("=")
            if sep:
                yield name.strip(), value.strip()


def _only_standard_finders() -> bool:
    from importlib.machinery import PathFinder

    return all(
        finder is PathFinder or not hasattr(finder, "find_distributions")
        for finder in sys.meta_path
    )


def _from_importlib(group: str) -> list[FoundEntryPoint]:
    from importlib.metadata import entry_points

    found = []
    for ep in entry_points(group=group):
        dist = Distribution(ep.dist.name, ep.dist.version) if ep.dist else None
        found.append(FoundEntryPoint(ep.name, ep.value, ep.group, dist))
    return found


def entry_points_of(*groups: str) -> dict[str, list[FoundEntryPoint]]:
    """Every entry point of each of ``groups``, by group, in ``sys.path`` order."""
    if not _only_standard_finders():
        return {group: _from_importlib(group) for group in groups}
    seen: set[str] = set()
    found: dict[str, list[FoundEntryPoint]] = {group: [] for group in groups}
    for entry in sys.path:
        directory = entry or "."
        try:
            names = sorted(os.listdir(directory))
        except NotADirectoryError:  # a zip file: importlib.metadata reads those
            return {group: _from_importlib(group) for group in groups}
        except OSError:
            continue
        for name in names:
            if not name.endswith(_METADATA_SUFFIXES):
                continue
            dist_key = _normalized(name.rpartition(".")[0].partition("-")[0])
            if dist_key in seen:
                continue
            seen.add(dist_key)
            metadata_dir = os.path.join(directory, name)
            try:
                with open(os.path.join(metadata_dir, "entry_points.txt"), encoding="utf-8") as f:
                    text = f.read()
            except OSError:
                continue
            if not any(f"[{group}]" in text for group in groups):
                continue
            dist = _read_distribution(metadata_dir)
            for group in groups:
                for ep_name, value in _parse(text, group):
                    found[group].append(FoundEntryPoint(ep_name, value, group, dist))
    return found
