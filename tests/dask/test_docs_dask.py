"""Every code block of the Dask page of the user guide runs, against real clusters."""

from __future__ import annotations

import pytest

from ..docs_runner import DOCS, PAGES_OF, blocks, run_block

PAGES = [DOCS / name for name in PAGES_OF["dask"]]


def test_the_page_has_code():
    assert len(list(blocks(PAGES))) >= 3


@pytest.mark.parametrize(("language", "code"), list(blocks(PAGES)))
def test_code_block(language, code, tmp_path):
    run_block(language, code, tmp_path)
