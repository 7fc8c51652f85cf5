"""Every code block of the Dask page of the user guide runs, against real clusters."""

from __future__ import annotations

import re

import pytest

from ..docs_runner import DOCS, PAGES_OF, blocks, run_block

PAGES = [DOCS / name for name in PAGES_OF["dask"]]


def test_the_page_has_code():
    assert len(list(blocks(PAGES))) >= 3


@pytest.mark.parametrize(("language", "code"), list(blocks(PAGES)))
def test_code_block(language, code, tmp_path):
    run_block(language, code, tmp_path)


def test_the_resources_workflow_runs_unchanged_on_dask(tmp_path):
    """The Resources page's workflow, as a reader runs it: ``python resources_workflow.py dask``."""
    (language, code), *_ = [p.values for p in blocks([DOCS / "resources.md"])]
    out = run_block(language, code, tmp_path, args=("dask",))
    assert "dask: 2 cores" in out
    assert re.search(r"DONE ranks=1, cores_per_rank=2 -> \d+ 2\n", out)  # OMP_NUM_THREADS=2
    assert "-> 6" in out
