"""Rough edges a new user hits: attribute probing, install hints, error wording, pickling of
RHAPSODY's errors."""

from __future__ import annotations

import importlib
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

import rhapsody
from rhapsody.api import (
    BackendConfigurationError,
    ComputeTask,
    Session,
    TaskCanceledError,
    TaskExecutionError,
    TaskTimeoutError,
    TaskValidationError,
)
from rhapsody.backends import ConcurrentExecutionBackend
from rhapsody.plugins import ENV_BLOCK


def test_probing_a_missing_backend_is_an_attribute_error():
    backends = importlib.import_module("rhapsody.backends")
    assert not hasattr(backends, "Nope")
    assert getattr(backends, "Nope", None) is None
    with pytest.raises(AttributeError, match="no backend 'Nope'"):
        backends.Nope  # noqa: B018
    with pytest.raises(ImportError, match="no backend 'Nope'"):
        from rhapsody.backends import Nope  # noqa: F401
    assert not hasattr(importlib.import_module("rhapsody.backends.execution"), "Nope")
    assert not hasattr(rhapsody, "Nope")


def test_get_backend_of_a_missing_first_party_backend_says_what_to_install(monkeypatch):
    monkeypatch.setenv(ENV_BLOCK, "dask,dragon")
    for name in ("dask", "dragon", "dragon_v3"):
        with pytest.raises(ImportError, match="rhapsody-d(ask|ragon)") as info:
            rhapsody.get_backend(name)
        assert "available: [" not in str(info.value)
    with pytest.raises(ImportError, match="rhapsody-dask"):
        importlib.import_module("rhapsody.backends.execution.dask_parallel")


async def test_error_text_names_the_task_once_and_reads_cleanly(tmp_path):
    async with Session(backends=[await ConcurrentExecutionBackend()], work_dir=tmp_path) as s:
        one_line = ComputeTask(executable="/bin/sh", arguments=["-c", "echo oops >&2; exit 3"])
        lines = ComputeTask(
            executable="/bin/sh", arguments=["-c", "printf 'a\\nb\\n' >&2; exit 1"], uid="sim-1"
        )
        missing = ComputeTask(executable="/nonexistent/tool")
        await s.submit_tasks([one_line, lines, missing])
        await s.wait_tasks([one_line, lines, missing])
    assert str(one_line.exception) == f"{one_line.uid} exited with code 3; stderr: oops"
    assert str(lines.exception) == "task 'sim-1' exited with code 1; stderr:\n  a\n  b"
    text = str(missing.exception)
    assert text == (
        f"{missing.uid} could not start '/nonexistent/tool': No such file or directory (errno 2)"
    )
    assert text.count("No such file") == 1


errors = st.one_of(
    st.builds(
        TaskExecutionError, st.text(min_size=1), st.none() | st.text(), st.none() | st.integers()
    ),
    st.builds(TaskTimeoutError, st.text(min_size=1), st.floats(0.1, 100)),
    st.builds(TaskCanceledError, st.text(min_size=1), st.text()),
    st.builds(TaskValidationError, st.text(min_size=1), st.text(), st.integers()),
    st.builds(BackendConfigurationError, st.text(), st.text(), st.text(), st.integers()),
)


@given(errors)
def test_every_rhapsody_error_pickles(error):
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error) and str(back) == str(error)
    assert vars(back) == vars(error)
    # by the errors' own __reduce__, whatever copyreg was given (tblib registers some classes)
    rebuild, arguments = error.__reduce__()[:2]
    again = rebuild(*arguments)
    assert type(again) is type(error) and str(again) == str(error) and vars(again) == vars(error)


def test_importing_a_backends_submodule_loads_no_plugin():
    # `from rhapsody.backends import where` probes the package's attributes first: that probe
    # must not load the plugins (a plugin importing it would import itself half-way).
    import subprocess
    import sys

    code = (
        "import rhapsody.plugins.manager as m\n"
        "from rhapsody.backends import where, lookup\n"
        "from rhapsody.backends.execution import concurrent\n"
        "from rhapsody.backends.inference import __name__ as n\n"
        "assert m._host is None, 'plugins were loaded'\n"
        "print(where.HOST)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
