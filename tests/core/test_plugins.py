"""Plugin discovery for real: the built-in backend and a pip-installed third-party plugin
(tests/plugins/example-plugin) both come through the ``rhapsody`` entry-point group."""

from __future__ import annotations

import logging
import re

import pytest

import rhapsody
from rhapsody.api import AITask, ComputeTask, Session, TaskState
from rhapsody.plugins import ENV_BLOCK, ENV_LOAD, get_plugin_host


def test_builtin_and_third_party_backends_are_discovered():
    found = rhapsody.discover_backends()
    assert found["concurrent"].available and found["concurrent"]
    assert found["concurrent"].distribution == "rhapsody-core"
    assert found["concurrent"].kind == "execution"
    assert found["inline"].distribution == "rhapsody-example-plugin"
    assert found["inline"].version == "1.0.0"
    assert found["echo"].kind == "inference"


def test_broken_plugin_is_listed_unavailable_and_breaks_nothing(caplog):
    with caplog.at_level(logging.WARNING, logger="rhapsody.plugins.manager"):
        found = rhapsody.discover_backends()
    broken = found["example_broken"]
    assert not broken and not broken.available
    assert "No module named 'rhapsody_example_missing_dependency'" in broken.reason
    assert "example_broken" in caplog.text and "skipped" in caplog.text
    assert found["inline"] and found["concurrent"]


def test_backends_module_exposes_classes_by_kind():
    from rhapsody.backends import ConcurrentExecutionBackend, InlineExecutionBackend
    from rhapsody.backends.execution import ConcurrentExecutionBackend as Same
    from rhapsody.backends.inference import EchoInferenceBackend

    assert Same is ConcurrentExecutionBackend
    assert InlineExecutionBackend.kind == "execution" and EchoInferenceBackend.kind == "inference"
    with pytest.raises(ImportError, match="has no backend 'EchoInferenceBackend'"):
        from rhapsody.backends.execution import EchoInferenceBackend
    import rhapsody.backends as b

    assert "InlineExecutionBackend" in dir(b)


@pytest.mark.parametrize(
    ("name", "dist", "hint"),
    [
        ("DaskExecutionBackend", "rhapsody-dask", "pip install 'rhapsody-core[dask]'"),
        ("DragonExecutionBackendV3", "rhapsody-dragon", "pip install 'rhapsody-core[dragon]'"),
        ("VllmInferenceBackend", "rhapsody-vllm", "pip install 'rhapsody-core[vllm]'"),
    ],
)
def test_first_party_backend_import_or_install_hint(name, dist, hint):
    import importlib
    from importlib.metadata import PackageNotFoundError, distribution

    module = importlib.import_module("rhapsody.backends")
    try:
        distribution(dist)
    except PackageNotFoundError:
        with pytest.raises(ImportError, match=re.escape(hint)):
            exec(f"from rhapsody.backends import {name}")
        with pytest.raises(AttributeError, match=re.escape(hint)):  # same hint, hasattr-safe
            getattr(module, name)
        assert not hasattr(module, name)
    else:  # installed in this environment: it must import
        assert getattr(module, name).__name__ == name


def test_blocked_first_party_backend_says_so(monkeypatch):
    import importlib.util

    monkeypatch.setenv(ENV_BLOCK, "dask,dragon,vllm")
    module = importlib.import_module("rhapsody.backends")
    # blocked where rhapsody-dask is installed, the install hint where it is not
    hint = "RHAPSODY_BLOCK_PLUGINS" if importlib.util.find_spec("rhapsody_dask") else "pip install"
    with pytest.raises(ImportError, match=hint):
        from rhapsody.backends import DaskExecutionBackend  # noqa: F401
    # Read as an attribute it is an AttributeError with the same hint: hasattr() says False.
    with pytest.raises(AttributeError, match=hint):
        module.DaskExecutionBackend  # noqa: B018
    assert not hasattr(module, "DaskExecutionBackend")


async def test_third_party_backends_are_routed_to_and_run():
    from rhapsody.backends import EchoInferenceBackend, InlineExecutionBackend

    inline = await InlineExecutionBackend()
    echo = await EchoInferenceBackend()
    async with Session(backends=[echo, inline]) as session:
        compute = ComputeTask(function=sum, args=([1, 2, 3],))
        ai = AITask(prompt=["abc", "xyz"])
        await session.submit_tasks([compute, ai])
        await session.wait_tasks([compute, ai])
    assert (compute.backend, compute.return_value) == ("inline", 6)
    assert (ai.backend, ai.response) == ("echo", ["cba", "zyx"])
    assert compute.state is ai.state is TaskState.DONE


def test_get_backend():
    be = rhapsody.get_backend("concurrent", name="mine")
    assert type(be).__name__ == "ConcurrentExecutionBackend" and be.name == "mine"
    with pytest.raises(ValueError, match="no backend named 'nope'"):
        rhapsody.get_backend("nope")
    with pytest.raises(ImportError, match="unavailable"):
        rhapsody.get_backend("example_broken")


def test_block_list(monkeypatch):
    monkeypatch.setenv(ENV_BLOCK, "example, example_broken")
    found = rhapsody.discover_backends()
    assert "inline" not in found and "example_broken" not in found and "concurrent" in found


def test_allow_list(monkeypatch):
    monkeypatch.setenv(ENV_LOAD, "example")
    found = rhapsody.discover_backends()
    assert set(found) == {"inline", "echo"}
    with pytest.raises(ImportError):
        from rhapsody.backends import ConcurrentExecutionBackend  # noqa: F401


async def test_lifecycle_hooks_unbound_when_unimplemented():
    from rhapsody.backends import ConcurrentExecutionBackend

    async with Session(backends=[ConcurrentExecutionBackend()]) as session:
        assert session._on_state is None and session._on_submitted is None
        assert session._on_finished is None


def test_runtime_registration_of_a_backend():
    from rhapsody.backends import ExecutionBackend
    from rhapsody.plugins import BackendSpec, hookimpl, register, unregister

    class Nothing(ExecutionBackend):
        async def submit_tasks(self, tasks): ...
        async def cancel_tasks(self, tasks): ...
        async def shutdown(self): ...

    class Plugin:
        @hookimpl
        def rhapsody_register_backends(self):
            return BackendSpec(name="nothing", cls=Nothing, kind="execution")

    register(Plugin(), name="nothing-plugin")
    assert rhapsody.discover_backends()["nothing"].cls is Nothing
    from rhapsody.backends import Nothing as Found

    assert Found is Nothing
    unregister("nothing-plugin")
    assert "nothing" not in rhapsody.discover_backends()


def test_plugin_with_bad_declaration_is_unavailable():
    from rhapsody.plugins import hookimpl, register

    class Bad:
        @hookimpl
        def rhapsody_register_backends(self):
            return ["not a spec"]

    register(Bad(), name="bad-decl")
    info = get_plugin_host().backends()["bad-decl"]
    assert not info.available and "expected BackendSpec" in info.reason


def test_a_backend_declared_by_reference_is_imported_when_first_used():
    import sys

    from rhapsody.plugins import BackendSpec, hookimpl, register, unregister

    module = "tests.core.lazy_backend"
    sys.modules.pop(module, None)

    class Plugin:
        @hookimpl
        def rhapsody_register_backends(self):
            return [
                BackendSpec(name="lazy", cls=f"{module}:LazyExecutionBackend", kind="execution"),
                BackendSpec(
                    name="needy",
                    cls=f"{module}:LazyExecutionBackend",
                    kind="execution",
                    requires=("no_such_module_for_rhapsody",),
                ),
            ]

    register(Plugin(), name="lazy-plugin")
    try:
        found = rhapsody.discover_backends()
        assert found["lazy"].available and found["lazy"].class_name == "LazyExecutionBackend"
        assert module not in sys.modules  # discovery imported nothing of it
        needy = found["needy"]
        assert not needy.available
        assert needy.reason == "needs no_such_module_for_rhapsody, which is not installed"
        backend = rhapsody.get_backend("lazy")
        assert module in sys.modules and type(backend).__name__ == "LazyExecutionBackend"
        from rhapsody.backends import LazyExecutionBackend

        assert type(backend) is LazyExecutionBackend
    finally:
        unregister("lazy-plugin")


def test_a_bad_reference_is_refused_naming_the_field():
    from rhapsody.plugins import BackendSpec

    with pytest.raises(TypeError, match=r"BackendSpec.cls: expected a Backend subclass or a "):
        BackendSpec(name="x", cls="no colon here", kind="execution")
    with pytest.raises(ValueError, match=r"BackendSpec.requires: expected a tuple of module"):
        BackendSpec(name="x", cls="a.b:C", kind="execution", requires=["distributed"])
