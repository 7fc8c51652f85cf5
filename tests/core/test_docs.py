"""Every code block of the core pages of the user guide (and the README's example) runs."""

from __future__ import annotations

import pytest

from ..docs_runner import BLOCK, ROOT, blocks, core_pages, run_block


def readme_blocks():
    for i, match in enumerate(BLOCK.finditer((ROOT / "README.md").read_text())):
        if match.group(1) == "python":  # its shell blocks are the quick start CI runs
            yield pytest.param("python", match.group(2), id=f"README-{i}")


def test_the_guide_has_code():
    assert len(list(blocks(core_pages()))) >= 10


@pytest.mark.parametrize(("language", "code"), [*blocks(core_pages()), *readme_blocks()])
def test_code_block(language, code, tmp_path):
    run_block(language, code, tmp_path)
