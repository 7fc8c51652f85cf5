"""Every code block of the vLLM page of the user guide runs, each against its own vLLM server,
in a directory holding the tiny test model as ``llama-3`` and a ``simulate.sh``."""

from __future__ import annotations

import os

import pytest

from ..docs_runner import DOCS, PAGES_OF, blocks, run_block
from .conftest import VLLM_ENV

PAGES = [DOCS / name for name in PAGES_OF["vllm"]]


def vllm_servers() -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if b"vllm.entrypoints.openai.api_server" in f.read():
                        found.add(int(entry))
            except OSError:
                continue
    return found


def test_the_page_has_code():
    assert len(list(blocks(PAGES))) >= 2


@pytest.mark.timeout(400)
@pytest.mark.parametrize(("language", "code"), list(blocks(PAGES)))
def test_code_block(language, code, tmp_path_factory, tiny_model):
    scripts = tmp_path_factory.mktemp("scripts")
    simulate = scripts / "simulate.sh"
    simulate.write_text("#!/bin/sh\necho 'energy converged after 40 steps'\n")
    simulate.chmod(0o755)
    before = vllm_servers()
    run_block(
        language,
        code,
        tmp_path_factory.mktemp("example"),
        staged={"llama-3": tiny_model, "simulate.sh": simulate},
        env_extra=VLLM_ENV,
    )
    assert not (vllm_servers() - before), "the example left vLLM servers running"
