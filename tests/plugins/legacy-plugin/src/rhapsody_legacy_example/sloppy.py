"""A rhapsody-py backend that breaks the rules a session relies on: it reports states of its
own (PENDING), reports DONE twice, calls back from a worker thread, and never ends tasks whose
first argument is "hang" (they stay RUNNING)."""

import threading

from rhapsody.backends.base import BaseBackend
from rhapsody.backends.constants import StateMapper


class SloppyExecutionBackend(BaseBackend):
    def __init__(self, name="legacy_sloppy"):
        super().__init__(name=name)
        self._callback_func = lambda t, s: None
        self.canceled = []
        self.shut_down = False

    def __await__(self):
        return self._init().__await__()

    async def _init(self):
        StateMapper.register_backend_tasks_states_with_defaults(backend=self)
        return self

    def get_task_states_map(self):
        return StateMapper(backend=self)

    async def submit_tasks(self, tasks):
        for task in tasks:
            self._callback_func(task, "PENDING")
            if task.get("arguments") and task["arguments"][0] == "hang":
                self._callback_func(task, "RUNNING")
                continue
            threading.Thread(target=self._finish_twice, args=(task,), daemon=True).start()

    def _finish_twice(self, task):
        task["stdout"] = "first"
        self._callback_func(task, "RUNNING")
        self._callback_func(task, "DONE")
        task["stdout"] = "second"
        self._callback_func(task, "FAILED")

    async def cancel_task(self, uid):
        self.canceled.append(uid)
        return True

    async def shutdown(self):
        self.shut_down = True

    def state(self):
        return "RUNNING"

    def task_state_cb(self, task, state):
        pass

    def build_task(self, task):
        pass
