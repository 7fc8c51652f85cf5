"""Every code block of the Dragon page of the user guide runs, each started with ``dragon``.

These run under plain pytest: each example starts (and stops) its own Dragon runtime.
"""

from __future__ import annotations

import pytest

from ..docs_runner import DOCS, PAGES_OF, blocks, run_block

PAGES = [DOCS / name for name in PAGES_OF["dragon"]]


def test_the_page_has_code():
    assert len(list(blocks(PAGES))) >= 2


@pytest.mark.parametrize(("language", "code"), list(blocks(PAGES)))
def test_code_block(language, code, tmp_path):
    run_block(language, code, tmp_path, launcher="dragon")


def test_the_resources_workflow_runs_unchanged_on_dragon(tmp_path):
    """The Resources page's workflow, as a reader runs it: ``dragon resources_workflow.py
    dragon``."""
    (language, code), *_ = [p.values for p in blocks([DOCS / "resources.md"])]
    out = run_block(language, code, tmp_path, launcher="dragon", args=("dragon",))
    assert "dragon: " in out
    assert "DONE ranks=1, cores_per_rank=2 -> 2 2" in out  # two cores, OMP_NUM_THREADS=2
    assert "-> 6" in out
