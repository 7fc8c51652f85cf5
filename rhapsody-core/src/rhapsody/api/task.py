"""Task descriptions: :class:`ComputeTask` (executables, functions) and :class:`AITask` (inference).

Tasks are attrs classes: every field is validated at construction (and on assignment), so a bad
task raises :class:`TaskValidationError` before anything runs. A submitted task is awaitable:
``await task`` returns the task once it is DONE and raises its error otherwise.

Tasks are also data: they read and write like dicts (``task["uid"]``, ``task.update(...)``,
extra fields such as ``priority="high"`` kept as given), pickle, deep-copy, and turn into a
JSON-safe dict (:meth:`BaseTask.to_dict`) that :meth:`BaseTask.from_dict` turns back into the
same task, results included.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import os
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any, ClassVar

import attrs

from ..resources import request as resource_fields
from ..resources.request import ResourceRequest, request_of
from . import validators as v
from .errors import TaskNotSubmittedError, TaskValidationError, task_label
from .lazy_futures import FutureToMake, make_future
from .portable import (
    from_json_safe,
    picklable_callable,
    picklable_result,
    to_json_safe,
)
from .states import TERMINAL_STATES, TaskState
from .task_copies import clone_task, unpickle_task
from .task_fields import (
    ALL_RESULTS,
    ASSIGNMENT_CHECKS,
    EMPTY_MAPPING,
    IGNORED_KEYS,
    assignment_checks,
    check_extra,
    checked,
    field_names,
    merge_positional,
)
from .task_filling import _FILLERS, filler
from .task_mapping import TaskMapping

# attrs' own assignment hooks are off: BaseTask.__setattr__ validates the described fields and
# lets results (written several times per task by backends) through at the cost of one lookup.
# (Every field says so itself: that also makes attrs' __init__ fill them with
# object.__setattr__, after its own validation, not through BaseTask.__setattr__.)
_NO_HOOKS = attrs.setters.NO_OP
_object_setattr = object.__setattr__

_uid_counter = itertools.count(1)  # next() on itertools.count is atomic under the GIL


def next_uid() -> str:
    """A process-unique task uid of the form ``task.000001``."""
    return f"task.{next(_uid_counter):06d}"


def _sort_out(
    cls: type, names: Any, fields: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split constructor arguments into the task's own fields and extra fields (None meaning
    "the default", another kind's results, rhapsody-py's bookkeeping keys)."""
    own: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in fields.items():
        if key in names.init:
            if value is not None or key not in names.none_is_default:
                own[key] = value  # rhapsody-py passes None for "the default"
        elif key in ALL_RESULTS or key in IGNORED_KEYS:
            if value is not None and key in names.results:
                raise TaskValidationError(
                    key,
                    "no value: results are written by the backend",
                    value,
                    owner=cls.__name__,
                )
            if value is not None and key in ALL_RESULTS:
                extra[key] = value  # another kind's result: kept as an extra field
        else:
            check_extra(cls, key, value)
            extra[key] = value
    return own, extra


@attrs.define(kw_only=True, eq=False, repr=False, init=False, on_setattr=_NO_HOOKS)
class BaseTask(TaskMapping):
    """Fields and results common to every task."""

    kind: ClassVar[str] = "task"
    # Constructor arguments accepted by position, in rhapsody-py's order.
    positional_fields: ClassVar[tuple[str, ...]] = ("uid", "backend")

    uid: str = attrs.field(factory=next_uid, metadata=checked(v.uid), on_setattr=_NO_HOOKS)
    backend: str | None = attrs.field(
        default=None, metadata=checked(v.optional_str), on_setattr=_NO_HOOKS
    )
    timeout: float | None = attrs.field(
        default=None, metadata=checked(v.optional_timeout, v.to_real), on_setattr=_NO_HOOKS
    )
    task_backend_specific_kwargs: Mapping[str, Any] = attrs.field(
        default=EMPTY_MAPPING, metadata=checked(v.str_keyed_mapping), on_setattr=_NO_HOOKS
    )

    # Results, written by the backend that runs the task. Not validated on assignment: they are
    # set several times per task on the hot path, only by backends and the session.
    state: TaskState = attrs.field(init=False, default=TaskState.NEW, on_setattr=_NO_HOOKS)
    return_value: Any = attrs.field(init=False, default=None, on_setattr=_NO_HOOKS)
    stdout: str | None = attrs.field(init=False, default=None, on_setattr=_NO_HOOKS)
    stderr: str | None = attrs.field(init=False, default=None, on_setattr=_NO_HOOKS)
    exit_code: int | None = attrs.field(init=False, default=None, on_setattr=_NO_HOOKS)
    exception: BaseException | None = attrs.field(init=False, default=None, on_setattr=_NO_HOOKS)
    traceback: str | None = attrs.field(init=False, default=None, on_setattr=_NO_HOOKS)
    # When and where it ran: seconds since the epoch (rhapsody.api.clock: differences are exact
    # durations), stamped by the session when the backend did not stamp them more precisely;
    # the host and worker (thread, process, Dask worker, Dragon node/pid, vLLM replica) when the
    # backend knows them.
    submitted_at: float | None = attrs.field(init=False, default=None, on_setattr=_NO_HOOKS)
    started_at: float | None = attrs.field(init=False, default=None, on_setattr=_NO_HOOKS)
    ended_at: float | None = attrs.field(init=False, default=None, on_setattr=_NO_HOOKS)
    host: str | None = attrs.field(init=False, default=None, on_setattr=_NO_HOOKS)
    worker: str | None = attrs.field(init=False, default=None, on_setattr=_NO_HOOKS)
    # Bookkeeping: the future the session resolves, and extra fields (None until there is one).
    _future: asyncio.Future[Any] | FutureToMake | None = attrs.field(
        init=False, default=None, on_setattr=_NO_HOOKS
    )
    _extra: dict[str, Any] | None = attrs.field(init=False, default=None, on_setattr=_NO_HOOKS)

    def __init__(self, *args: Any, **fields: Any) -> None:
        cls = type(self)
        if args:
            fields = merge_positional(cls, args, fields)
        names = field_names(cls)
        extra: dict[str, Any] | None = None
        if not (fields.keys() <= names.init and None not in fields.values()):
            fields, extra = _sort_out(cls, names, fields)
        checks = ASSIGNMENT_CHECKS.get(cls) or assignment_checks(cls)
        for key, value in fields.items():  # the given values only: defaults are valid
            fields[key] = checks[key](self, value)
        (_FILLERS.get(cls) or filler(cls))(self, **fields)
        if extra:
            self._extra = extra

    def __setattr__(self, name: str, value: Any) -> None:
        checks = ASSIGNMENT_CHECKS.get(type(self))
        if checks is None:
            checks = assignment_checks(type(self))
        check = checks.get(name)
        if check is not None:  # a described field: converted and validated like at construction
            value = check(self, value)
        _object_setattr(self, name, value)

    def __await__(self) -> Generator[Any, None, Any]:
        future = self.future
        if future is None:
            raise TaskNotSubmittedError(
                f"{task_label(self.uid)} has not been submitted: pass it to "
                "session.submit_tasks() before awaiting it"
            )
        return future.__await__()

    @property
    def future(self) -> asyncio.Future[Any] | None:
        """The future the session resolves when this task ends (None before submission)."""
        future = self._future
        if isinstance(future, FutureToMake):
            return make_future(self, future)
        return future

    @property
    def done(self) -> bool:
        """True once the task reached DONE, FAILED or CANCELED."""
        return self.state in TERMINAL_STATES  # a frozenset: enum attribute lookups are slow

    @property
    def queue_time(self) -> float | None:
        """Seconds from submission to RUNNING (None until it ran)."""
        if self.started_at is None or self.submitted_at is None:
            return None
        return max(0.0, self.started_at - self.submitted_at)

    @property
    def run_time(self) -> float | None:
        """Seconds from RUNNING to its end (None unless it ran and ended)."""
        if self.ended_at is None or self.started_at is None:
            return None
        return max(0.0, self.ended_at - self.started_at)

    @property
    def resources(self) -> ResourceRequest | None:
        """The task's resource request (only compute tasks make one)."""
        return None

    @property
    def extra(self) -> Mapping[str, Any]:
        """The extra fields given beside the task's own (``priority="high"``...)."""
        return self._extra if self._extra is not None else EMPTY_MAPPING

    def validate(self) -> None:
        """Check every field again (after changing mutable values in place)."""
        attrs.validate(self)
        post_init = getattr(self, "__attrs_post_init__", None)
        if post_init is not None:
            post_init()

    # -- tasks as data ------------------------------------------------------------------------

    def to_dict(self, *, json_safe: bool = True) -> dict[str, Any]:
        """Every public field, result and extra field as a dict.

        By default the dict is JSON-safe (``json.dumps`` takes it; see :mod:`rhapsody.api.portable`
        for how functions, exceptions and other objects are written); ``json_safe=False`` keeps
        the values themselves. :meth:`from_dict` takes either form back.
        """
        out = {name: getattr(self, name) for name in field_names(type(self)).public}
        if self._extra:
            out.update(self._extra)
        for name in ("kwargs", "task_backend_specific_kwargs", "usage"):
            value = out.get(name)
            if isinstance(value, Mapping):
                out[name] = dict(value)
        out["state"] = self.state.value
        if json_safe:
            return {key: to_json_safe(value) for key, value in out.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BaseTask:
        """Build a task from a dict (:meth:`to_dict`'s output, either form, or a plain
        description); results found in it are restored. On :class:`BaseTask` the kind is
        chosen like :func:`task_from_dict` does."""
        if cls is BaseTask:
            return task_from_dict(data)
        return _build(cls, data)

    def _reset_results(self) -> None:
        """Forget the results of an earlier run (a restored task submitted again)."""
        for name in field_names(type(self)).results:
            object.__setattr__(self, name, _DEFAULTS[name])

    def __reduce__(self) -> tuple[Any, ...]:
        state = {name: getattr(self, name) for name in field_names(type(self)).public}
        if self._extra:
            state["_extra"] = dict(self._extra)
        function = state.get("function")
        if function is not None:
            state["function"] = picklable_callable(function)
        for name in ("return_value", "response", "exception"):
            if state.get(name) is not None:
                state[name] = picklable_result(state[name])
        return (unpickle_task, (type(self), state))

    def __copy__(self) -> BaseTask:
        return clone_task(self, lambda value: value)

    def __deepcopy__(self, memo: dict[int, Any]) -> BaseTask:
        def deep(value: Any) -> Any:
            try:
                return copy.deepcopy(value, memo)
            except Exception:  # noqa: BLE001 - a value that cannot be copied is shared
                return value

        return clone_task(self, deep, memo)

    def _describe(self) -> str:
        return ""

    def __repr__(self) -> str:
        backend = f", backend={self.backend!r}" if self.backend else ""
        head = f"{type(self).__name__}(uid={self.uid!r}, state={self.state.value}"
        return f"{head}{self._describe()}{backend})"


_DEFAULTS: dict[str, Any] = {
    "state": TaskState.NEW,
    **{name: None for name in ALL_RESULTS if name != "state"},
}


@attrs.define(kw_only=True, eq=False, repr=False, init=False, on_setattr=_NO_HOOKS)
class ComputeTask(BaseTask):
    """An executable (``executable=``, ``arguments=``) or a Python function (``function=``,
    ``args=``, ``kwargs=``, sync or ``async def``) to run on an execution backend."""

    kind: ClassVar[str] = "compute"
    positional_fields: ClassVar[tuple[str, ...]] = (
        "executable",
        "function",
        "arguments",
        "args",
        "kwargs",
        "uid",
        "input_files",
        "output_files",
        "capture_stdio",
    )

    executable: str | os.PathLike[str] | None = attrs.field(
        default=None, metadata=checked(v.optional_path), on_setattr=_NO_HOOKS
    )
    arguments: Sequence[str] = attrs.field(
        default=(), metadata=checked(v.str_sequence), on_setattr=_NO_HOOKS
    )
    function: Callable[..., Any] | None = attrs.field(
        default=None, metadata=checked(v.optional_callable), on_setattr=_NO_HOOKS
    )
    args: Sequence[Any] = attrs.field(
        default=(), metadata=checked(v.positional_args), on_setattr=_NO_HOOKS
    )
    kwargs: Mapping[str, Any] = attrs.field(
        default=EMPTY_MAPPING, metadata=checked(v.str_keyed_mapping), on_setattr=_NO_HOOKS
    )
    capture_stdio: bool = attrs.field(
        default=False, metadata=checked(v.boolean), on_setattr=_NO_HOOKS
    )
    input_files: Sequence[str] = attrs.field(
        default=(), metadata=checked(v.str_sequence), on_setattr=_NO_HOOKS
    )
    output_files: Sequence[str] = attrs.field(
        default=(), metadata=checked(v.str_sequence), on_setattr=_NO_HOOKS
    )
    # The resource request (RADICAL-Pilot's vocabulary). None: not requested; a task that
    # requests nothing runs as every backend runs such tasks (see docs/resources.md). Checked,
    # like every described field, only when given (no per-task cost otherwise).
    ranks: int | None = attrs.field(
        default=None, metadata=resource_fields.RANKS, on_setattr=_NO_HOOKS
    )
    cores_per_rank: int | None = attrs.field(
        default=None, metadata=resource_fields.CORES, on_setattr=_NO_HOOKS
    )
    gpus_per_rank: float | None = attrs.field(
        default=None, metadata=resource_fields.GPUS, on_setattr=_NO_HOOKS
    )
    mem_per_rank: int | None = attrs.field(
        default=None, metadata=resource_fields.MEMORY, on_setattr=_NO_HOOKS
    )

    def __attrs_post_init__(self) -> None:
        if self.function is None:
            if self.executable is None:
                raise TaskValidationError(
                    "executable",
                    "exactly one of executable= or function=",
                    "neither",
                    owner="ComputeTask",
                )
            if self.args or self.kwargs:
                raise TaskValidationError(
                    "args",
                    "no args/kwargs for an executable (use arguments=)",
                    self.args or dict(self.kwargs),
                    owner="ComputeTask",
                )
        elif self.executable is not None:
            raise TaskValidationError(
                "executable",
                "exactly one of executable= or function=",
                f"both (executable={self.executable!r}, function={self.function!r})",
                owner="ComputeTask",
            )
        elif self.arguments:
            raise TaskValidationError(
                "arguments",
                "no arguments for a function (use args=/kwargs=)",
                self.arguments,
                owner="ComputeTask",
            )

    @property
    def resources(self) -> ResourceRequest | None:
        """The resource request with its defaults filled in (ranks=1, cores_per_rank=1,
        gpus_per_rank=0), or None when the task requested nothing."""
        ranks, cores, gpus, memory = (
            self.ranks,
            self.cores_per_rank,
            self.gpus_per_rank,
            self.mem_per_rank,
        )
        if ranks is None and cores is None and gpus is None and memory is None:
            return None
        return request_of(ranks, cores, gpus, memory)

    @property
    def is_function(self) -> bool:
        """True for a function task, False for an executable."""
        return self.function is not None

    def _describe(self) -> str:
        if self.function is not None:
            return f", function={getattr(self.function, '__qualname__', self.function)!s}"
        return f", executable={os.fspath(self.executable)!r}"  # type: ignore[arg-type]


@attrs.define(kw_only=True, eq=False, repr=False, init=False, on_setattr=_NO_HOOKS)
class AITask(BaseTask):  # type: ignore[override]  # its __attrs_init__ requires prompt
    """An inference request for an inference backend; the answer lands on ``.response``
    (a list, in prompt order, when ``prompt`` is a list)."""

    kind: ClassVar[str] = "ai"
    positional_fields: ClassVar[tuple[str, ...]] = (
        "prompt",
        "model",
        "inference_endpoint",
        "system_prompt",
        "temperature",
        "max_tokens",
        "top_p",
        "top_k",
        "stop_sequences",
        "uid",
        "backend",
    )

    prompt: str | Sequence[str] = attrs.field(metadata=checked(v.prompt), on_setattr=_NO_HOOKS)
    model: str | None = attrs.field(
        default=None, metadata=checked(v.optional_str), on_setattr=_NO_HOOKS
    )
    inference_endpoint: str | None = attrs.field(
        default=None, metadata=checked(v.optional_str), on_setattr=_NO_HOOKS
    )
    system_prompt: str | None = attrs.field(
        default=None, metadata=checked(v.optional_str), on_setattr=_NO_HOOKS
    )
    temperature: float | None = attrs.field(
        default=None,
        metadata=checked(v.number_in_range(0.0, 2.0), v.to_real),
        on_setattr=_NO_HOOKS,
    )
    max_tokens: int | None = attrs.field(
        default=None, metadata=checked(v.optional_positive_int, v.to_int), on_setattr=_NO_HOOKS
    )
    top_p: float | None = attrs.field(
        default=None,
        metadata=checked(v.number_in_range(0.0, 1.0, lo_open=True), v.to_real),
        on_setattr=_NO_HOOKS,
    )
    top_k: int | None = attrs.field(
        default=None, metadata=checked(v.optional_top_k, v.to_int), on_setattr=_NO_HOOKS
    )
    stop_sequences: Sequence[str] | None = attrs.field(
        default=None, metadata=checked(v.optional_str_sequence), on_setattr=_NO_HOOKS
    )

    response: Any = attrs.field(init=False, default=None, on_setattr=_NO_HOOKS)
    usage: Mapping[str, Any] | None = attrs.field(init=False, default=None, on_setattr=_NO_HOOKS)

    def _describe(self) -> str:
        text = self.prompt if isinstance(self.prompt, str) else f"[{len(self.prompt)} prompts]"
        model = f", model={self.model!r}" if self.model else ""
        return f", prompt={text[:40]!r}{model}"


_TASK_CLASSES: dict[str, type[BaseTask]] = {"compute": ComputeTask, "ai": AITask}


def task_from_dict(description: Mapping[str, Any]) -> BaseTask:
    """Build and validate a task from a dict (see :meth:`BaseTask.from_dict`).

    A dict with ``prompt`` becomes an :class:`AITask`, otherwise a :class:`ComputeTask`; an explicit
    ``"type": "compute" | "ai"`` (or rhapsody-py's ``"task_type": "ComputeTask"``) overrides the
    guess. Keys that are not fields are kept as extra fields.
    """
    if not isinstance(description, Mapping):
        raise TaskValidationError("task", "a ComputeTask, an AITask or a dict", description)
    kind = description.get("type") or description.get("task_type")
    if kind is None:
        kind = "ai" if "prompt" in description else "compute"
    cls = _TASK_CLASSES.get(str(kind).lower().removesuffix("task"))
    if cls is None:
        raise TaskValidationError("type", "'compute' or 'ai'", kind)
    return _build(cls, description)


def _build(cls: type[BaseTask], data: Mapping[str, Any]) -> BaseTask:
    names = field_names(cls)
    given: dict[str, Any] = {}
    results: dict[str, Any] = {}
    for key, value in data.items():
        if key in IGNORED_KEYS:
            continue
        if type(value) is dict or type(value) is list:
            value = from_json_safe(value)
        if key in names.results:
            if value is not None:
                results[key] = value
        else:
            given[key] = value
    task = cls(**given)
    for key, value in results.items():
        if key == "state":
            value = TaskState(value)
        object.__setattr__(task, key, value)
    return task
