"""The session's end of the pipe to the checkpoint writer process, on a real writer process."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import time

import pytest

from rhapsody.telemetry.trace_ids import TraceIds
from rhapsody.telemetry.writer_pipe import CheckpointWriter

pytestmark = pytest.mark.timeout(120)

PAD = "x" * 2000  # an event of ~2 KB: 1,000 of them are more than a widened pipe holds


def event_records(first: int, count: int) -> list[object]:
    records: list[object] = []
    for i in range(first, first + count):
        # a string of its own each (pickle would send one string shared by all just once)
        records += ["V", {"name": "Custom", "n": i, "payload": f"{i}{PAD}"}]
    return records


def numbers_in(path: str) -> list[int]:
    with open(path) as fh:
        return [line["n"] for line in map(json.loads, fh) if "n" in line]


async def open_writer(tmp_path) -> CheckpointWriter:
    path = os.path.join(tmp_path, "run.telemetry.jsonl")
    loop = asyncio.get_running_loop()
    return CheckpointWriter(path, "session.x", TraceIds.new().as_tuple(), loop)


async def test_a_burst_the_pipe_cannot_take_waits_in_the_loop_and_arrives_whole(tmp_path) -> None:
    writer = await open_writer(tmp_path)
    os.kill(writer._proc.pid, signal.SIGSTOP)  # the writer reads nothing for a while
    try:
        started = time.monotonic()
        for first in range(0, 3000, 500):
            writer.send(event_records(first, 500))
        # send() never blocks on a full pipe: the rest waits, and the loop writes it later
        assert time.monotonic() - started < 5
        assert writer._pending, "a 6 MB burst fitted in the pipe: the test proves nothing"
    finally:
        os.kill(writer._proc.pid, signal.SIGCONT)
    assert await writer.close(60)
    assert numbers_in(writer.path) == list(range(3000))


async def test_records_sent_from_another_thread_arrive_in_order(tmp_path) -> None:
    writer = await open_writer(tmp_path)
    writer.send(event_records(0, 10))
    sender = threading.Thread(target=writer.send, args=(event_records(10, 10),))
    sender.start()
    await asyncio.to_thread(sender.join)
    await asyncio.sleep(0)  # the loop takes the other thread's batch
    writer.send(event_records(20, 10))
    assert await writer.close(60)
    assert numbers_in(writer.path) == list(range(30))


async def test_close_gives_up_on_a_stuck_writer_within_its_timeout(tmp_path, caplog) -> None:
    caplog.set_level(logging.ERROR)
    writer = await open_writer(tmp_path)
    os.kill(writer._proc.pid, signal.SIGSTOP)
    writer.send(event_records(0, 2000))
    started = time.monotonic()
    assert not await writer.close(1.0)
    assert time.monotonic() - started < 10
    assert writer._proc.poll() is not None  # killed, not left behind
    assert "did not finish" in caplog.text


async def test_a_send_after_close_writes_nothing_anywhere(tmp_path) -> None:
    writer = await open_writer(tmp_path)
    assert await writer.close(60)
    # the pipe's descriptor number is free again: a file opened later may get it
    other = os.path.join(tmp_path, "other")
    fd = os.open(other, os.O_WRONLY | os.O_CREAT)
    os.dup2(fd, writer._fd)
    try:
        writer.send(event_records(0, 5))
    finally:
        os.close(writer._fd)
        os.close(fd)
    assert os.path.getsize(other) == 0


async def test_a_dead_writer_is_reported_once_and_sends_stop(tmp_path, caplog) -> None:
    caplog.set_level(logging.ERROR)
    writer = await open_writer(tmp_path)
    writer._proc.kill()
    writer._proc.wait()
    for first in range(0, 40, 10):
        writer.send(event_records(first, 10))
    assert writer.failed and not writer._pending
    assert caplog.text.count("stopped") == 1
    assert not await writer.close(10)


@pytest.mark.skipif(
    not os.path.exists("/proc/sys/fs/pipe-max-size"), reason="no pipe size limit to read (Linux)"
)
async def test_the_pipe_is_widened_to_a_mebibyte_where_allowed(tmp_path) -> None:
    import fcntl

    writer = await open_writer(tmp_path)
    with open("/proc/sys/fs/pipe-max-size") as fh:
        allowed = int(fh.read())
    try:
        assert fcntl.fcntl(writer._fd, fcntl.F_GETPIPE_SZ) == min(allowed, 1 << 20)
    finally:
        assert await writer.close(60)


async def test_records_left_unsent_at_close_make_it_report_failure(tmp_path, caplog) -> None:
    # A writer that takes its time, then exits cleanly having read only part of the records:
    # the file is short, and close() must say so rather than report a clean finish.
    caplog.set_level(logging.ERROR)
    writer = await open_writer(tmp_path)
    process = writer._proc
    os.kill(process.pid, signal.SIGSTOP)
    writer.send(event_records(0, 2000))
    assert writer._pending
    process.wait = lambda timeout=None: 0  # type: ignore[method-assign]  # "exited cleanly"
    try:
        assert not await writer.close(0.5)
        assert "did not take all records" in caplog.text
    finally:
        os.kill(process.pid, signal.SIGKILL)
        os.waitpid(process.pid, 0)


async def test_a_record_the_writer_cannot_format_loses_its_frame_not_the_file(
    tmp_path, caplog, capfd
) -> None:
    writer = await open_writer(tmp_path)
    writer.send(event_records(0, 3))
    writer.send(["?", "a record of no known kind", *event_records(3, 2)])  # that frame: lost
    writer.send(event_records(5, 3))
    with caplog.at_level(logging.ERROR):
        assert not await writer.close(30)  # the session learns the file is short
    assert numbers_in(writer.path) == [0, 1, 2, 5, 6, 7]
    assert "unknown telemetry record '?'" in capfd.readouterr().err
    assert "exited with code 1" in caplog.text
