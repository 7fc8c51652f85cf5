"""set_result: a backend's fast write of result fields is the same as assigning them."""

from __future__ import annotations

import attrs
import pytest

from rhapsody.api import AITask, ComputeTask
from rhapsody.api.task_fields import assignment_checks
from rhapsody.backends.result_fields import RESULT_FIELDS, set_result

TASK_CLASSES = (ComputeTask, AITask)
BOOKKEEPING = {"state", "submitted_at", "_future", "_extra"}  # the session's


@pytest.mark.parametrize("cls", TASK_CLASSES)
def test_result_fields_are_the_fields_a_backend_writes_and_have_no_checks(cls: type) -> None:
    written = {f.name for f in attrs.fields(cls) if not f.init} - BOOKKEEPING
    assert written <= RESULT_FIELDS  # every result field is listed
    checks = assignment_checks(cls)
    assert not RESULT_FIELDS & set(checks)  # none has a check that set_result would skip


def test_set_result_is_what_assignment_does() -> None:
    fast, slow = ComputeTask(function=print), ComputeTask(function=print)
    for name, value in {
        "return_value": [1, 2],
        "stdout": "out",
        "exit_code": 0,
        "started_at": 1.5,
        "host": "node1",
        "worker": "thread 1",
    }.items():
        set_result(fast, name, value)
        setattr(slow, name, value)
        assert getattr(fast, name) == getattr(slow, name) == value
    assert fast.to_dict() | {"uid": None} == slow.to_dict() | {"uid": None}
