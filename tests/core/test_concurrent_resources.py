"""Resource requests on the concurrent backend, with real processes: what each rank saw (its CPU
affinity, CUDA_VISIBLE_DEVICES, RANK...), and from the times the processes themselves recorded,
that the cores and GPUs in use never exceeded what the backend was given.

This machine has no GPU: the tests give the backend a GPU inventory (``gpus=[...]``) and check
what the processes were told; real GPU placement is checked on a GPU node (see the closing note
of the resources issue).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rhapsody.api import ComputeTask, ResourceError, Session, TaskState
from rhapsody.backends import ConcurrentExecutionBackend

from ..conftest import peak_use, pid_alive, wait_until

# Not fork: a pool forking from a process that runs threads can hang a worker at start
# (the backend warns about it; seen in this suite under load).
SPAWN = multiprocessing.get_context("spawn")

# A rank that reports what it saw and when it ran, as one JSON line.
REPORT = (
    "import json, os, sys, time; start = time.time(); time.sleep(float(sys.argv[1])); "
    "print(json.dumps({'start': start, 'end': time.time(), 'rank': os.environ.get('RANK'), "
    "'world': os.environ.get('WORLD_SIZE'), 'local': os.environ.get('LOCAL_RANK'), "
    "'cuda': os.environ.get('CUDA_VISIBLE_DEVICES'), 'omp': os.environ.get('OMP_NUM_THREADS'), "
    "'cpus': sorted(os.sched_getaffinity(0)), 'pid': os.getpid()}))"
)


def reporting(seconds: float = 0.0, **request) -> ComputeTask:
    return ComputeTask(executable=sys.executable, arguments=["-c", REPORT, str(seconds)], **request)


def reports(task: ComputeTask) -> list[dict]:
    return [json.loads(line) for line in task.stdout.splitlines()]


async def run(tasks, **backend_kwargs):
    async with Session([ConcurrentExecutionBackend(**backend_kwargs)]) as session:
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks, timeout=120)
    return tasks


CPUS = sorted(os.sched_getaffinity(0))


async def test_each_rank_sees_its_cores_gpus_and_rank():
    gpus = ["0", "1", "2", "3"]  # an inventory given to the backend: this machine has no GPU
    job = reporting(ranks=2, cores_per_rank=1, gpus_per_rank=2)
    alone = reporting(cores_per_rank=len(CPUS))
    cpu_only = reporting()
    cpu_only.cores_per_rank = 1
    await run([job], gpus=gpus)
    await run([alone, cpu_only], gpus=gpus)
    ranks = sorted(reports(job), key=lambda r: r["rank"])
    assert [(r["rank"], r["local"], r["world"]) for r in ranks] == [
        ("0", "0", "2"),
        ("1", "1", "2"),
    ]
    assert [r["cuda"] for r in ranks] == ["0,1", "2,3"]  # two GPUs each, never shared
    assert all(len(r["cpus"]) == 1 and r["omp"] == "1" for r in ranks)
    if len(CPUS) > 1:
        assert ranks[0]["cpus"] != ranks[1]["cpus"]  # each rank pinned to a core of its own
    (whole,) = reports(alone)
    assert whole["cpus"] == CPUS and whole["omp"] == str(len(CPUS))
    (plain,) = reports(cpu_only)
    assert plain["cuda"] == ""  # it asked for no GPU: it sees none


async def test_shares_of_a_gpu_are_shared_and_whole_gpus_are_not():
    tasks = [reporting(0.3, gpus_per_rank=0.5) for _ in range(4)]
    await run(tasks, gpus=["7", "9"], cores=8)
    seen = [reports(t)[0]["cuda"] for t in tasks]
    assert sorted(seen) == ["7", "7", "9", "9"]


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    batch=st.lists(
        st.tuples(
            st.integers(1, 2),
            st.integers(1, 2),
            st.sampled_from([0, 0.5, 1]),
            st.sampled_from([0.0, 0.05, 0.2]),
        ),
        min_size=4,
        max_size=14,
    )
)
def test_cores_and_gpus_in_use_never_exceed_the_backend(batch):
    tasks = [
        reporting(seconds, ranks=ranks, cores_per_rank=cores, gpus_per_rank=gpus)
        for ranks, cores, gpus, seconds in batch
    ]
    asyncio.run(run(tasks, cores=4, gpus=["0", "1"]))
    assert all(t.state is TaskState.DONE for t in tasks), [t.exception for t in tasks]
    cores, per_gpu = [], {"0": [], "1": []}
    for task in tasks:
        for rank in reports(task):
            cores.append((rank["start"], rank["end"], task.cores_per_rank))
            for gpu in filter(None, rank["cuda"].split(",")):
                per_gpu[gpu].append((rank["start"], rank["end"], min(task.gpus_per_rank, 1)))
    assert peak_use(cores) <= 4
    for intervals in per_gpu.values():
        assert peak_use(intervals) <= 1


async def test_a_failing_rank_fails_the_job_and_stops_the_others():
    script = 'if [ "$RANK" = 1 ]; then exit 3; fi; echo $$; exec sleep 60'
    job = ComputeTask(executable="sh", arguments=["-c", script], ranks=3)
    started = time.monotonic()
    await run([job], cores=3)
    assert time.monotonic() - started < 30
    assert job.state is TaskState.FAILED and job.exit_code == 3
    assert "rank 1 of 3" in str(job.exception)
    for pid in map(int, job.stdout.split()):
        assert wait_until(lambda pid=pid: not pid_alive(pid), 10)


async def test_an_impossible_request_refuses_the_whole_batch_before_anything_runs(tmp_path):
    marker = tmp_path / "ran"
    good = ComputeTask(executable="touch", arguments=[str(marker)], cores_per_rank=1)
    too_wide = ComputeTask(executable="true", cores_per_rank=3)
    too_many_gpus = ComputeTask(executable="true", gpus_per_rank=1)
    too_much_memory = ComputeTask(executable="true", mem_per_rank="2GB")
    async with Session([ConcurrentExecutionBackend(cores=2, memory="1GB", gpus=[])]) as session:
        for bad in (too_wide, too_many_gpus, too_much_memory):
            with pytest.raises(ResourceError) as caught:
                await session.submit_tasks([good, bad])
            message = str(caught.value)
            assert bad.uid in message and "can never run" in message and "2 cores" in message
        function_job = ComputeTask(function=print, ranks=2)
        with pytest.raises(ResourceError, match="runs a function as one rank"):
            await session.submit_tasks([function_job])
    assert not marker.exists()
    assert good.state is TaskState.NEW


async def test_waiting_tasks_can_be_canceled_or_time_out():
    async with Session([ConcurrentExecutionBackend(cores=1)]) as session:
        busy = ComputeTask(executable="sleep", arguments=["1"], cores_per_rank=1)
        waiting = ComputeTask(executable="true", cores_per_rank=1)
        # a timeout counts from RUNNING: this one times out once it got its core
        timing_out = ComputeTask(executable="sleep", arguments=["5"], cores_per_rank=1, timeout=0.3)
        after = ComputeTask(executable="true", cores_per_rank=1)
        await session.submit_tasks([busy, waiting, timing_out, after])
        await asyncio.sleep(0.1)
        assert waiting.state is TaskState.SUBMITTED
        await session.cancel_tasks([waiting])
        await session.wait_tasks([busy, waiting, timing_out, after], timeout=30)
    assert [t.state for t in (busy, waiting, timing_out, after)] == [
        TaskState.DONE,
        TaskState.CANCELED,
        TaskState.FAILED,
        TaskState.DONE,
    ]


async def test_closing_the_session_ends_waiting_tasks_and_leaves_no_process():
    session = Session([ConcurrentExecutionBackend(cores=1)])
    job = ComputeTask(executable="sh", arguments=["-c", "echo $$; exec sleep 60"], ranks=1)
    queued = [ComputeTask(executable="true", cores_per_rank=1) for _ in range(3)]
    async with session:
        await session.submit_tasks([job, *queued])
        await asyncio.sleep(0.3)
        running = session.backends["concurrent"]._jobs
        pids = [p.pid for ranks in running.values() for p in ranks]
    assert job.done and all(t.done for t in queued)
    assert all(wait_until(lambda pid=pid: not pid_alive(pid), 10) for pid in pids)


def hold(seconds: float, lock: threading.Lock, active: list[int], peak: list[int]) -> None:
    with lock:
        active[0] += 1
        peak[0] = max(peak[0], active[0])
    time.sleep(seconds)
    with lock:
        active[0] -= 1


async def test_functions_with_a_request_run_only_on_free_cores():
    lock, active, peak = threading.Lock(), [0], [0]
    tasks = [
        ComputeTask(function=hold, args=(0.1, lock, active, peak), cores_per_rank=2)
        for _ in range(6)
    ]
    await run(tasks, cores=4)
    assert all(t.state is TaskState.DONE for t in tasks)
    assert peak[0] == 2


def pid_and_time(seconds: float) -> tuple[int, float, float]:
    start = time.time()
    time.sleep(seconds)
    return os.getpid(), start, time.time()


async def test_functions_on_a_process_pool_free_their_cores_when_they_end():
    pool = ProcessPoolExecutor(max_workers=4, mp_context=SPAWN)
    tasks = [ComputeTask(function=pid_and_time, args=(0.1,), cores_per_rank=1) for _ in range(6)]
    await run(tasks, executor=pool, cores=2)
    assert all(t.state is TaskState.DONE for t in tasks)
    assert peak_use([(s, e, 1) for _, s, e in (t.return_value for t in tasks)]) <= 2


async def test_memory_is_accounted():
    tasks = [reporting(0.2, mem_per_rank="1GB") for _ in range(4)]
    await run(tasks, cores=8, memory="2GB")
    assert peak_use([(r["start"], r["end"], 1) for t in tasks for r in reports(t)]) <= 2


async def test_captured_output_of_every_rank_goes_to_the_task_files(tmp_path):
    job = ComputeTask(executable="sh", arguments=["-c", "echo rank $RANK"], ranks=2)
    job.capture_stdio = True
    async with Session([ConcurrentExecutionBackend(cores=2)], work_dir=str(tmp_path)) as session:
        await session.submit_tasks([job])
        await job
    with open(job.stdout) as f:
        assert sorted(f.read().splitlines()) == ["rank 0", "rank 1"]


def test_bad_backend_options_are_refused():
    from rhapsody.api import BackendConfigurationError

    not_ours = max(os.sched_getaffinity(0)) + 1  # a CPU this process may not run on
    bad = ({"cores": 0}, {"cores": ["a"]}, {"cores": [not_ours]}, {"gpus": "0,1"}, {"memory": "x"})
    for kwargs in bad:
        with pytest.raises(BackendConfigurationError) as caught:
            ConcurrentExecutionBackend(**kwargs)
        assert next(iter(kwargs)) in str(caught.value)


MPIEXEC = str(Path(sys.executable).parent / "mpiexec")  # MPICH, from PyPI's mpich wheel


async def test_an_mpi_launcher_starts_every_rank_when_the_task_asks_for_one():
    script = 'echo "$PMI_RANK/$PMI_SIZE omp=$OMP_NUM_THREADS gpus=$CUDA_VISIBLE_DEVICES"'
    job = ComputeTask(
        executable="sh",
        arguments=["-c", script],
        ranks=2,
        cores_per_rank=1,
        gpus_per_rank=1,
        task_backend_specific_kwargs={"launcher": MPIEXEC},
    )
    await run([job], cores=2, gpus=["4", "5"])
    assert job.state is TaskState.DONE, job.exception
    assert sorted(job.stdout.splitlines()) == ["0/2 omp=1 gpus=4,5", "1/2 omp=1 gpus=4,5"]


def test_a_launcher_that_is_not_installed_is_refused():
    from rhapsody.api import TaskValidationError

    task = ComputeTask(
        executable="true", ranks=2, task_backend_specific_kwargs={"launcher": "no-such-mpirun"}
    )
    with pytest.raises(TaskValidationError, match="an MPI launcher installed on this node"):
        ConcurrentExecutionBackend().check_tasks([task])


REAL_GPUS = __import__("rhapsody.resources", fromlist=["discover_gpus"]).discover_gpus()
SEE_GPU = (
    "import time; start = time.time(); import torch; n = torch.cuda.device_count(); "
    "print(n, torch.cuda.get_device_properties(0).uuid if n else '-', start, time.time())"
)


@pytest.mark.skipif(
    not REAL_GPUS or __import__("importlib").util.find_spec("torch") is None,
    reason="no GPU (and torch) on this machine: real GPU placement is checked on a GPU node",
)
async def test_on_real_gpus_each_task_sees_exactly_its_own():
    tasks = [
        ComputeTask(executable=sys.executable, arguments=["-c", SEE_GPU], gpus_per_rank=1)
        for _ in range(len(REAL_GPUS) * 2)
    ]
    await run(tasks)
    seen = [t.stdout.split() for t in tasks]
    assert all(count == "1" for count, *_ in seen), seen  # one GPU visible to each
    by_gpu: dict[str, list] = {}
    for _, uuid, start, end in seen:
        by_gpu.setdefault(uuid, []).append((float(start), float(end), 1))
    assert len(by_gpu) == len(REAL_GPUS)  # every GPU used
    assert all(peak_use(spans) <= 1 for spans in by_gpu.values())  # by one task at a time


def write_pid_and_sleep(path: str) -> None:
    with open(path, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(60)


async def test_canceling_a_task_without_a_request_still_stops_it_beside_placed_ones(tmp_path):
    """A process-pool function with no request is killed on cancel, also once the backend
    schedules requested tasks."""
    pid_file = tmp_path / "pid"
    backend = ConcurrentExecutionBackend(
        executor=ProcessPoolExecutor(max_workers=2, mp_context=SPAWN), cores=2
    )
    async with Session([backend]) as session:
        placed = ComputeTask(function=os.getpid, cores_per_rank=1)
        plain = ComputeTask(function=write_pid_and_sleep, args=(str(pid_file),))
        await session.submit_tasks([placed, plain])
        await placed
        assert wait_until(pid_file.exists, 30)
        pid = int(pid_file.read_text())
        await session.cancel_tasks([plain])
        assert wait_until(lambda: not pid_alive(pid), 15)
    assert plain.state is TaskState.CANCELED


async def test_many_waiting_tasks_are_canceled_in_one_pass():
    async with Session([ConcurrentExecutionBackend(cores=1)]) as session:
        busy = ComputeTask(executable="sleep", arguments=["0.5"], cores_per_rank=1)
        waiting = [ComputeTask(function=os.getpid, cores_per_rank=1) for _ in range(20000)]
        last = ComputeTask(function=os.getpid, cores_per_rank=1)
        await session.submit_tasks([busy, *waiting, last])
        await session.cancel_tasks(waiting)
        await session.wait_tasks([busy, *waiting, last], timeout=60)
    assert busy.state is TaskState.DONE and last.state is TaskState.DONE
    assert all(t.state is TaskState.CANCELED for t in waiting)
