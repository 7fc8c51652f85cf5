"""A rhapsody-py 0.6 backend, written as its plugin authors write them: task dicts in, state
callbacks out, its own spelling of the states registered with StateMapper."""

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from rhapsody.backends.base import BaseBackend
from rhapsody.backends.constants import BackendMainStates, StateMapper

logger = logging.getLogger(__name__)


class QueueExecutionBackend(BaseBackend):
    """Functions on a thread pool, executables as subprocesses."""

    def __init__(self, name="legacy_queue", workers=4):
        super().__init__(name=name)
        self._executor = ThreadPoolExecutor(max_workers=workers)
        self.tasks = {}
        self._callback_func = lambda t, s: None
        self._backend_state = BackendMainStates.INITIALIZED
        self.started = False

    def __await__(self):
        return self._async_init().__await__()

    async def _async_init(self):
        StateMapper.register_backend_tasks_states(
            backend=self,
            done_state="COMPLETED",
            failed_state="ERROR",
            canceled_state="ABORTED",
            running_state="ACTIVE",
        )
        self.started = True
        return self

    def get_task_states_map(self):
        return StateMapper(backend=self)

    async def submit_tasks(self, tasks):
        self._backend_state = BackendMainStates.RUNNING
        for task in tasks:
            self.tasks[task["uid"]] = asyncio.create_task(self._run(task))

    async def _run(self, task):
        self._callback_func(task, "ACTIVE")
        try:
            if task.get("function"):
                loop = asyncio.get_running_loop()
                func, args, kwargs = task["function"], task.get("args", ()), task.get("kwargs", {})
                result = await loop.run_in_executor(self._executor, lambda: func(*args, **kwargs))
                task.update({"return_value": result, "stdout": str(result), "exit_code": 0})
                state = "COMPLETED"
            else:
                process = await asyncio.create_subprocess_exec(
                    task["executable"],
                    *task.get("arguments", []),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                try:
                    out, err = await process.communicate()
                except asyncio.CancelledError:
                    process.kill()
                    await process.wait()
                    raise
                task.update(
                    {
                        "stdout": out.decode(),
                        "stderr": err.decode(),
                        "exit_code": process.returncode,
                    }
                )
                state = "COMPLETED" if process.returncode == 0 else "ERROR"
        except asyncio.CancelledError:
            self._callback_func(task, "ABORTED")
            raise
        except Exception as e:
            task.update({"exception": e, "exit_code": 1, "stderr": str(e)})
            state = "ERROR"
        self._callback_func(task, state)

    async def cancel_task(self, uid):
        running = self.tasks.get(uid)
        if running is not None and not running.done():
            running.cancel()
            return True
        return False

    async def shutdown(self):
        self._backend_state = BackendMainStates.SHUTDOWN
        for running in self.tasks.values():
            running.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def state(self):
        return self._backend_state.value

    def task_state_cb(self, task, state):
        pass

    def build_task(self, task):
        pass

    def queue_length(self):
        """A method of its own, which its users call."""
        return sum(1 for t in self.tasks.values() if not t.done())
