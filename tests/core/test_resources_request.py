"""The resource request fields of ComputeTask: validated like every field, None when not given."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rhapsody.api import ComputeTask, TaskValidationError
from rhapsody.resources import ResourceRequest, parse_memory


def exe(**fields):
    return ComputeTask(executable="true", **fields)


def test_a_task_without_a_request_has_none():
    task = exe()
    assert task.resources is None
    assert (task.ranks, task.cores_per_rank, task.gpus_per_rank, task.mem_per_rank) == (None,) * 4


def test_defaults_fill_in_what_was_not_given():
    assert exe(cores_per_rank=1).resources == ResourceRequest(1, 1, 0, None)
    assert exe(gpus_per_rank=0.5).resources == ResourceRequest(1, 1, 0.5, None)
    request = exe(ranks=4, cores_per_rank=2, gpus_per_rank=1, mem_per_rank="2GiB").resources
    assert request == ResourceRequest(4, 2, 1, 2 << 30)
    assert (request.cores, request.gpus) == (8, 4)


@given(st.integers(1, 10**6), st.integers(1, 512), st.integers(0, 64))
def test_whole_numbers_are_accepted_and_kept(ranks, cores, gpus):
    task = exe(ranks=ranks, cores_per_rank=cores, gpus_per_rank=gpus)
    assert task.resources == ResourceRequest(ranks, cores, gpus, None)


@given(st.integers(1, 999))
def test_gpu_shares_are_thousandths_of_one_gpu(thousandths):
    share = thousandths / 1000
    assert exe(gpus_per_rank=share).resources.gpu_units == thousandths


def test_numpy_numbers_and_integral_floats_are_converted():
    np = pytest.importorskip("numpy")
    task = exe(ranks=np.int64(2), cores_per_rank=4.0, gpus_per_rank=np.float64(0.5))
    assert (type(task.ranks), type(task.cores_per_rank), task.gpus_per_rank) == (int, int, 0.5)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ranks", 0),
        ("ranks", -1),
        ("ranks", 1.5),
        ("ranks", True),
        ("ranks", "2"),
        ("cores_per_rank", 0),
        ("cores_per_rank", [2]),
        ("gpus_per_rank", -1),
        ("gpus_per_rank", 1.5),
        ("gpus_per_rank", 0.0001),
        ("gpus_per_rank", float("nan")),
        ("gpus_per_rank", False),
        ("mem_per_rank", 0),
        ("mem_per_rank", -5),
        ("mem_per_rank", "lots"),
        ("mem_per_rank", "5 parsecs"),
        ("mem_per_rank", 1.5),
    ],
)
def test_bad_values_are_refused_naming_field_expected_and_given(field, value):
    with pytest.raises(TaskValidationError) as caught:
        exe(**{field: value})
    message = str(caught.value)
    assert f"ComputeTask.{field}" in message and "expected" in message and repr(value) in message


@given(st.one_of(st.text(max_size=8), st.floats(), st.booleans(), st.lists(st.integers())))
def test_no_value_gets_through_that_is_not_a_count(value):
    try:
        task = exe(ranks=value)
    except TaskValidationError as error:
        assert "ranks" in str(error)
    else:
        assert type(task.ranks) is int and task.ranks >= 1


def test_assignment_is_validated_too():
    task = exe()
    task.cores_per_rank = 2
    assert task.resources == ResourceRequest(1, 2)
    with pytest.raises(TaskValidationError, match="gpus_per_rank"):
        task["gpus_per_rank"] = 2.5


@pytest.mark.parametrize(
    ("text", "size"),
    [("512MB", 512 * 10**6), ("4GiB", 4 << 30), ("1.5 GB", 1_500_000_000), ("100", 100)],
)
def test_memory_sizes(text, size):
    assert parse_memory(text) == size
    assert exe(mem_per_rank=text).mem_per_rank == size


def test_the_request_travels_with_the_task():
    task = exe(ranks=2, gpus_per_rank=0.25)
    for copy in (ComputeTask.from_dict(task.to_dict()), pickle.loads(pickle.dumps(task))):
        assert copy.resources == task.resources
    assert ComputeTask.from_dict(exe().to_dict()).resources is None
