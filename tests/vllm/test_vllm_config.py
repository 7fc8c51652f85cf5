"""Configuration and request mapping: errors name the field, what was expected and what was given;
nothing starts for bad input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rhapsody.api import AITask, BackendConfigurationError, TaskValidationError
from rhapsody_vllm import VllmInferenceBackend, VllmModelConfig
from rhapsody_vllm.dragon_backend import replica_slots
from rhapsody_vllm.openai_api import chat_bodies, completion_body, completion_texts
from rhapsody_vllm.ports import free_port


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"model": ""}, "model"),
        ({"model": "m", "tensor_parallel_size": 0}, "tensor_parallel_size"),
        ({"model": "m", "max_model_len": -1}, "max_model_len"),
        ({"model": "m", "gpu_memory_utilization": 1.5}, "gpu_memory_utilization"),
        ({"model": "m", "gpu_memory_utilization": True}, "gpu_memory_utilization"),
        ({"model": "m", "extra_args": ["--x", 3]}, "extra_args"),
        ({"model": "m", "env": {"A": 1}}, "env"),
        ({"model": "m", "server_command": []}, "server_command"),
    ],
)
def test_model_config_rejects_bad_fields(kwargs: dict, field: str) -> None:
    with pytest.raises(BackendConfigurationError) as err:
        VllmModelConfig(**kwargs)
    assert err.value.field == field and f"VllmModelConfig.{field}: expected" in str(err.value)


@given(st.one_of(st.none(), st.integers(), st.floats(), st.booleans(), st.text(max_size=3)))
def test_tensor_parallel_size_accepts_only_positive_ints(value: object) -> None:
    ok = type(value) is int and value >= 1
    try:
        VllmModelConfig(model="m", tensor_parallel_size=value)
    except BackendConfigurationError as err:
        assert not ok and err.got == value
    else:
        assert ok


def test_server_command_line() -> None:
    config = VllmModelConfig(
        model="/models/llama",
        served_name="llama-3",
        tensor_parallel_size=2,
        max_model_len=256,
        dtype="bfloat16",
        gpu_memory_utilization=0.8,
        extra_args=["--enforce-eager"],
        server_command=["/opt/vllm/bin/python", "-m", "vllm.entrypoints.openai.api_server"],
    )
    argv = config.server_args("127.0.0.1", 8000, "key")
    assert argv[:3] == ["/opt/vllm/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    text = " ".join(argv)
    for part in (
        "--model /models/llama",
        "--served-model-name llama-3",
        "--host 127.0.0.1 --port 8000",
        "--tensor-parallel-size 2",
        "--max-model-len 256",
        "--dtype bfloat16",
        "--gpu-memory-utilization 0.8",
        "--api-key key",
    ):
        assert part in text
    assert argv[-1] == "--enforce-eager" and config.name == "llama-3"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "model"),
        ({"model": 3}, "model"),
        ({"model": "m", "replicas": 0}, "replicas"),
        ({"endpoint": "localhost:8000"}, "endpoint"),
        ({"model": "m", "host": ""}, "host"),
        ({"model": "m", "api_key": ""}, "api_key"),
        ({"model": "m", "max_in_flight": 0}, "max_in_flight"),
        ({"model": "m", "startup_timeout": -1}, "startup_timeout"),
        ({"model": "m", "max_restarts": -1}, "max_restarts"),
    ],
)
def test_backend_rejects_bad_arguments_before_starting(kwargs: dict, field: str) -> None:
    with pytest.raises(BackendConfigurationError) as err:
        VllmInferenceBackend(**kwargs)
    assert err.value.field == field


async def test_unknown_backend_option_is_rejected_before_anything_runs() -> None:
    backend = VllmInferenceBackend(endpoint="http://127.0.0.1:9/v1", model="m")
    task = AITask(prompt="p", task_backend_specific_kwargs={"stream": True})
    with pytest.raises(TaskValidationError, match="only 'extra_body'"):
        backend.check_tasks([task])
    bad_body = AITask(prompt="p", task_backend_specific_kwargs={"extra_body": [1]})
    with pytest.raises(TaskValidationError, match="a dict with str keys"):
        backend.check_tasks([bad_body])
    assert task.state.value == "NEW" and not backend.initialized


def test_request_bodies() -> None:
    task = AITask(prompt=["a", "b"], temperature=0.0, max_tokens=4, stop_sequences=["."])
    assert completion_body(task, "m") == {
        "model": "m",
        "prompt": ["a", "b"],
        "temperature": 0.0,
        "max_tokens": 4,
        "stop": ["."],
    }
    (one, two) = chat_bodies(AITask(prompt=["a", "b"], system_prompt="s", top_k=3), "m")
    assert one["messages"] == [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "a"},
    ]
    assert two["messages"][1]["content"] == "b" and two["top_k"] == 3


@given(st.permutations(list(range(6))))
def test_completion_texts_follow_the_choice_index(order: list[int]) -> None:
    data = {"choices": [{"index": i, "text": f"t{i}"} for i in order]}
    assert completion_texts(data, 6) == [f"t{i}" for i in range(6)]


nodes = st.lists(
    st.tuples(
        st.sampled_from(["n1", "n2", "n3", "n4"]),
        st.one_of(st.none(), st.lists(st.integers(0, 7), unique=True, max_size=8)),
    ),
    min_size=1,
    max_size=4,
    unique_by=lambda node: node[0],
)


@given(nodes, st.integers(1, 4))
def test_replica_slots_use_each_gpu_at_most_once(nodes, tp: int) -> None:
    slots = replica_slots(nodes, tp)
    for host, gpus in nodes:
        mine = [g for h, gs in slots if h == host for g in gs]
        if gpus:
            assert len(mine) == len(set(mine)) and set(mine) <= set(gpus)
    for _, gpus in slots:
        assert len(gpus) in (0, tp)
    n_slots = sum((len(g) // tp if g else 1) for _, g in nodes)
    assert len(slots) == n_slots


def test_free_ports_are_distinct_blocks() -> None:
    taken: set[int] = set()
    ports = [free_port("127.0.0.1", taken, 16) for _ in range(4)]
    blocks = [set(range(p, p + 16)) for p in ports]
    assert all(not (a & b) for i, a in enumerate(blocks) for b in blocks[i + 1 :])


def test_numpy_numbers_are_accepted_where_python_numbers_are():
    import numpy as np

    config = VllmModelConfig(
        model="m", tensor_parallel_size=np.int64(2), gpu_memory_utilization=np.float32(0.5)
    )
    assert type(config.tensor_parallel_size) is int and config.tensor_parallel_size == 2
    assert type(config.gpu_memory_utilization) is float
    backend = VllmInferenceBackend(
        model="m", replicas=np.int64(2), max_in_flight=np.int32(8), request_timeout=np.float64(3)
    )
    assert backend._replica_count == 2 and backend._request_timeout == 3.0
    with pytest.raises(BackendConfigurationError, match="replicas"):
        VllmInferenceBackend(model="m", replicas=True)


def test_rhapsody_py_module_path_of_the_vllm_backends():
    from rhapsody.backends.ai import DragonVllmInferenceBackend as by_namespace
    from rhapsody.backends.ai.vllm import DragonVllmInferenceBackend
    from rhapsody_vllm import DragonVllmInferenceBackend as own

    assert DragonVllmInferenceBackend is by_namespace is own
