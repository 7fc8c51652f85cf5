"""``VllmInferenceBackend``: AITasks answered by vLLM's OpenAI-compatible server, either replicas
this backend starts and manages (``model=``) or a server that already runs (``endpoint=``).

Requests are not held back to form batches (vLLM batches continuously on its own): up to
``max_in_flight`` are outstanding at any time, each sent to the healthy replica with the fewest
outstanding requests.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections import deque
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp

from rhapsody.api import (
    AITask,
    BackendConfigurationError,
    BackendError,
    BaseTask,
    RhapsodyError,
    TaskCanceledError,
    TaskState,
)
from rhapsody.api.errors import task_label
from rhapsody.api.validators import integer, real
from rhapsody.backends import InferenceBackend

from . import openai_api as api
from .config import VllmModelConfig, model_config
from .http_client import (
    ServerUnreachable,
    auth_headers,
    describe,
    get_json,
    new_http_session,
    post_json,
)
from .replicas import Replica, ReplicaSet, ReplicaState
from .servers import LocalServer
from .service import ManagedService, Placement

_RUNNING, _DONE, _FAILED, _CANCELED = (
    TaskState.RUNNING,
    TaskState.DONE,
    TaskState.FAILED,
    TaskState.CANCELED,
)
LOOPBACK = "127.0.0.1"
IN_FLIGHT_PER_REPLICA = 64
# A request whose server dropped it is sent again (it has no side effects), after the failure
# is understood: a killed server's death can be seen after its connections broke, and a
# request sent in that window fails again on the same server.
ATTEMPTS = 3
# Every request is bounded: a server that accepts the connection and never answers must not
# keep a task waiting forever. Generous, since a long generation may take minutes.
DEFAULT_REQUEST_TIMEOUT = 600.0


class VllmInferenceBackend(InferenceBackend):
    """Managed vLLM replicas (``model=``) or an existing server (``endpoint=``) for AITasks.

    ``model`` is a model name or path, or a :class:`VllmModelConfig`. ``replicas`` servers are
    started (each its own process: an engine crash never takes the workflow down), bound to
    ``host`` (loopback by default). A replica that dies is restarted up to ``max_restarts`` times
    and its in-flight requests are retried on a healthy replica (twice at most). A request that
    gets no complete answer within ``request_timeout`` seconds (default 600; None: no limit)
    fails its task with :class:`InferenceTimeoutError` (a task's own ``timeout`` applies too).
    """

    default_name: ClassVar[str] = "vllm"

    def __init__(
        self,
        name: str | None = None,
        model: str | VllmModelConfig | None = None,
        *,
        replicas: int | None = 1,
        endpoint: str | None = None,
        host: str = LOOPBACK,
        api_key: str | None = None,
        max_in_flight: int | None = None,
        startup_timeout: float = 900.0,
        max_restarts: int = 2,
        log_dir: str | None = None,
        request_timeout: float | None = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        super().__init__(name)
        owner = type(self).__name__
        if endpoint is not None and (
            type(endpoint) is not str or not endpoint.startswith(("http://", "https://"))
        ):
            raise BackendConfigurationError(
                owner, "endpoint", "an http(s):// URL or None", endpoint
            )
        if endpoint is None:
            if model is None:
                raise BackendConfigurationError(
                    owner,
                    "model",
                    "a model name or path, or a VllmModelConfig (or endpoint=)",
                    None,
                )
            self.config: VllmModelConfig | None = model_config(model, owner)
        else:
            self.config = None if model is None else model_config(model, owner)
        if replicas is not None and (integer(replicas) or 0) < 1:
            raise BackendConfigurationError(owner, "replicas", "a positive int", replicas)
        if type(host) is not str or not host:
            raise BackendConfigurationError(owner, "host", "a host name or address", host)
        if api_key is not None and (type(api_key) is not str or not api_key):
            raise BackendConfigurationError(owner, "api_key", "a non-empty string or None", api_key)
        if max_in_flight is not None and (integer(max_in_flight) or 0) < 1:
            raise BackendConfigurationError(owner, "max_in_flight", "a positive int", max_in_flight)
        if not (real(startup_timeout) or 0) > 0:
            raise BackendConfigurationError(
                owner, "startup_timeout", "a positive number of seconds", startup_timeout
            )
        if integer(max_restarts) is None or max_restarts < 0:
            raise BackendConfigurationError(owner, "max_restarts", "an int >= 0", max_restarts)
        if request_timeout is not None and (not 0 < (real(request_timeout) or 0) < float("inf")):
            raise BackendConfigurationError(
                owner, "request_timeout", "a finite number of seconds > 0, or None", request_timeout
            )
        if log_dir is not None and (type(log_dir) is not str or not log_dir):
            raise BackendConfigurationError(owner, "log_dir", "a directory path or None", log_dir)
        self._endpoint = endpoint.rstrip("/") if endpoint else None
        self._replica_count = integer(replicas)
        self._host, self._api_key = host, api_key
        self._max_in_flight = integer(max_in_flight)
        self._startup_timeout, self._max_restarts = (
            float(startup_timeout),
            integer(max_restarts) or 0,
        )
        self._log_dir, self._own_log_dir = log_dir, False
        self._request_timeout = None if request_timeout is None else float(request_timeout)
        self._headers = auth_headers(api_key)
        self._set = ReplicaSet()
        self._service: ManagedService | None = None
        self._http: aiohttp.ClientSession | None = None
        self._fresh_http: aiohttp.ClientSession | None = None  # retries, health checks
        self._model_name: str | None = self.config.name if self.config else None
        self._models: dict[str, str] = {}  # endpoint -> its model, for endpoints we did not start
        self._limit = 0
        self._in_flight = 0
        self._pending: deque[AITask] = deque()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._tasks: dict[str, AITask] = {}

    # -- life cycle -------------------------------------------------------------------------------

    @property
    def endpoints(self) -> list[str]:
        """The OpenAI base URLs (``http://host:port/v1``) of the healthy replicas."""
        return [r.api for r in self._set.healthy()]

    @property
    def model_name(self) -> str | None:
        """The model name requests use (the served name)."""
        return self._model_name

    async def initialize(self) -> None:
        if self._endpoint is not None:
            count = 1
        else:
            placements = await self._placements()
            count = len(placements)
        self._limit = self._max_in_flight or IN_FLIGHT_PER_REPLICA * count
        self._http = new_http_session(self._limit + 16)
        self._fresh_http = new_http_session(self._limit + 16, fresh=True)
        try:
            if self._endpoint is not None:
                root = self._endpoint.removesuffix("/v1")
                self._set.add(Replica(index=0, root=root, state=ReplicaState.HEALTHY))
                # Asked even when the model is given: a wrong URL fails here, not in every task.
                served = await self._served_model(f"{root}/v1")
                if self._model_name is None:
                    self._model_name = served
                return
            assert self.config is not None
            if self._log_dir is None:
                self._log_dir, self._own_log_dir = tempfile.mkdtemp(prefix="rhapsody-vllm-"), True
            self._service = ManagedService(
                config=self.config,
                placements=placements,
                launch=self._launcher(),
                replicas=self._set,
                http=self._fresh_http,
                api_key=self._api_key,
                startup_timeout=self._startup_timeout,
                max_restarts=self._max_restarts,
                log_dir=self._log_dir,
            )
            await self._service.start()
        except BaseException:
            await self._release()
            raise

    async def _placements(self) -> list[Placement]:
        """Where the replicas run; subclasses place them elsewhere."""
        return [Placement(self._host, connect_host(self._host))] * (self._replica_count or 1)

    def _launcher(self) -> Any:
        def launch(
            argv: list[str], env: Mapping[str, str], log_path: str, placement: Placement
        ) -> LocalServer:
            return LocalServer(argv, env, log_path)

        return launch

    async def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.cancel_initialize()  # shut down while servers start
        for task in list(self._tasks.values()):
            self._end(task, TaskCanceledError(task.uid, f"backend {self.name!r} shut down"))
        running = list(self._running.values())
        for request in running:
            request.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await self._release()

    async def _release(self) -> None:
        if self._service is not None:
            await self._service.stop()
        for http in (self._http, self._fresh_http):
            if http is not None:
                await http.close()
        self._http = self._fresh_http = None
        if self._own_log_dir and self._log_dir:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir, self._own_log_dir = None, False

    # -- tasks ------------------------------------------------------------------------------------

    def check_options(self, task: BaseTask) -> None:
        assert isinstance(task, AITask)
        api.check_options(task)

    async def submit_tasks(self, tasks: Sequence[BaseTask]) -> None:
        if self._closed:
            raise BackendError(f"backend {self.name!r} is shut down")
        await self  # initialised once, whoever asks first
        for task in tasks:
            assert isinstance(task, AITask)
            self._tasks[task.uid] = task
            self._pending.append(task)
        self._pump()

    async def cancel_tasks(self, tasks: Sequence[BaseTask]) -> None:
        # Also for tasks that already ended: the session fails a timed-out task, then asks here
        # to stop the request behind it.
        for task in tasks:
            if task.uid in self._tasks:
                assert isinstance(task, AITask)
                self._end(task, TaskCanceledError(task.uid, "canceled"))
            request = self._running.get(task.uid)
            if request is not None:
                request.cancel()

    def _pump(self) -> None:
        """Send pending requests while fewer than the limit are outstanding."""
        pending, running = self._pending, self._running
        while pending and self._in_flight < self._limit:
            task = pending.popleft()
            if task.done:  # canceled while it waited
                continue
            self._in_flight += 1
            self.report(task, _RUNNING)
            request = running[task.uid] = asyncio.ensure_future(self._serve(task))
            # Not a ``finally`` in _serve: a request canceled before it first ran never runs
            # its body, and its slot would be lost.
            request.add_done_callback(partial(self._served, task.uid))

    def _served(self, uid: str, _: object) -> None:
        self._in_flight -= 1
        self._running.pop(uid, None)
        if not self._closed:
            self._pump()

    async def _serve(self, task: AITask) -> None:
        # The session owns per-task timeouts: it fails the task, then cancels it here.
        try:
            response, usage = await self._answer(task)
        except asyncio.CancelledError:
            pass  # cancel_tasks / shutdown already ended the task
        except RhapsodyError as exc:
            self._end(task, exc)
        except Exception as exc:  # noqa: BLE001 - whatever went wrong fails this task only
            self._end(task, BackendError(f"{task_label(task.uid)}: {type(exc).__name__}: {exc}"))
        else:
            if task.done:
                return
            try:
                task.response, task.usage = response, usage
                self._tasks.pop(task.uid, None)
                self.report(task, _DONE)
            except Exception as exc:  # noqa: BLE001 - it ends FAILED, not RUNNING for ever
                self._end(task, BackendError(f"{task_label(task.uid)}: completing it: {exc}"))

    def _end(self, task: AITask, error: BaseException) -> None:
        self._tasks.pop(task.uid, None)
        if not task.done:
            task.exception = error
            self.report(task, _CANCELED if isinstance(error, TaskCanceledError) else _FAILED)

    async def _answer(self, task: AITask) -> tuple[Any, dict[str, int]]:
        if task.inference_endpoint is not None:
            api_url = task.inference_endpoint.rstrip("/")
            model = task.model or self._models.get(api_url) or await self._served_model(api_url)
            try:
                return await self._ask(api_url, model, task)
            except ServerUnreachable:
                # once more, on a new connection: the kept one may be what broke (a server
                # closes idle kept-alive connections); a server that is down fails it again
                return await self._ask(api_url, model, task, fresh=True)
        failed: Replica | None = None
        for attempt in range(1, ATTEMPTS + 1):
            replica = await self._set.acquire(avoid=failed)
            replica.outstanding += 1
            try:
                # a retry on a new connection: the kept one may be what broke
                model = task.model or self._model_name or ""
                return await self._ask(replica.api, model, task, fresh=attempt > 1)
            except ServerUnreachable as exc:
                if attempt == ATTEMPTS:
                    raise BackendError(
                        f"{task_label(task.uid)}: the request failed {ATTEMPTS} times "
                        f"(its replica's server did not answer); last: {exc}"
                    ) from exc
                failed = replica
            finally:
                replica.outstanding -= 1
            if self._service is not None:  # retried once the failure is understood
                await self._service.confirm(failed)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _ask(
        self, api_url: str, model: str, task: AITask, fresh: bool = False
    ) -> tuple[Any, dict[str, int]]:
        http = self._fresh_http if fresh else self._http
        if http is None:
            raise BackendError(f"backend {self.name!r} is not running")
        # where it runs: the replica (or endpoint) answering it, the last one asked on a retry
        task.host, task.worker = urlsplit(api_url).hostname, f"replica {api_url}"
        usage: dict[str, int] = {}
        if task.system_prompt is None:
            data = await post_json(
                http,
                api_url + api.COMPLETIONS,
                api.completion_body(task, model),
                self._headers,
                self._request_timeout,
            )
            api.add_usage(usage, data)
            if isinstance(task.prompt, str):
                return api.completion_texts(data, 1)[0], usage
            return api.completion_texts(data, len(task.prompt)), usage
        answers = await asyncio.gather(
            *(
                post_json(http, api_url + api.CHAT, body, self._headers, self._request_timeout)
                for body in api.chat_bodies(task, model)
            )
        )
        for data in answers:
            api.add_usage(usage, data)
        texts = [api.chat_text(data) for data in answers]
        return (texts[0] if isinstance(task.prompt, str) else texts), usage

    async def _served_model(self, api_url: str) -> str:
        """The (first) model an endpoint serves, asked once."""
        assert self._http is not None
        try:
            data = await get_json(
                self._http,
                f"{api_url}/models",
                self._headers,
                min(10.0, self._request_timeout or 10.0),
            )
            model = str(data["data"][0]["id"])
        except ServerUnreachable as exc:
            raise BackendError(f"inference endpoint {api_url} cannot be reached: {exc}") from exc
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise BackendError(
                f"inference endpoint {api_url}/models lists no model ({describe(exc)})"
            ) from exc
        self._models[api_url] = model
        return model


def connect_host(bind_host: str) -> str:
    """The address a client here uses for a server bound to ``bind_host`` (every interface is
    reached through loopback)."""
    return LOOPBACK if bind_host in ("0.0.0.0", "::", "") else bind_host
