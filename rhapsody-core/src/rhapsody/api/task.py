"""Task descriptions: :class:`ComputeTask` (executables, functions) and :class:`AITask` (inference).

Tasks are attrs classes: every field is validated at construction (and on assignment), so a bad
task raises :class:`TaskValidationError` before anything runs. A submitted task is awaitable:
``await task`` returns the task once it is DONE and raises its error otherwise.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Callable, Generator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

import attrs

from . import validators as v
from .errors import SessionError, TaskValidationError
from .states import TaskState

# Shared immutable default: tasks that pass no kwargs cost no dict of their own.
EMPTY_MAPPING: Mapping[str, Any] = MappingProxyType({})

_RESULT = attrs.setters.NO_OP  # result fields: plain assignment, no validator pipeline

_uid_counter = itertools.count(1)  # next() on itertools.count is atomic under the GIL


def next_uid() -> str:
    """A process-unique task uid of the form ``task.000001``."""
    return f"task.{next(_uid_counter):06d}"


@attrs.define(kw_only=True, eq=False, repr=False)
class BaseTask:
    """Fields and results common to every task."""

    kind: ClassVar[str] = "task"

    uid: str = attrs.field(factory=next_uid, validator=v.uid)
    backend: str | None = attrs.field(default=None, validator=v.optional_str)
    timeout: float | None = attrs.field(default=None, validator=v.optional_timeout)
    task_backend_specific_kwargs: Mapping[str, Any] = attrs.field(
        default=EMPTY_MAPPING, validator=v.str_keyed_mapping
    )

    # Results, written by the backend that runs the task. Not validated on assignment: they are
    # set several times per task on the hot path, only by backends and the session.
    state: TaskState = attrs.field(init=False, default=TaskState.NEW, on_setattr=_RESULT)
    return_value: Any = attrs.field(init=False, default=None, on_setattr=_RESULT)
    stdout: str | None = attrs.field(init=False, default=None, on_setattr=_RESULT)
    stderr: str | None = attrs.field(init=False, default=None, on_setattr=_RESULT)
    exit_code: int | None = attrs.field(init=False, default=None, on_setattr=_RESULT)
    exception: BaseException | None = attrs.field(init=False, default=None, on_setattr=_RESULT)
    traceback: str | None = attrs.field(init=False, default=None, on_setattr=_RESULT)
    # Bookkeeping: the future the session resolves.
    _future: asyncio.Future[Any] | None = attrs.field(init=False, default=None, on_setattr=_RESULT)

    def __await__(self) -> Generator[Any, None, Any]:
        future = self._future
        if future is None:
            raise SessionError(
                f"task {self.uid} has not been submitted: pass it to session.submit_tasks() "
                "before awaiting it"
            )
        return future.__await__()

    @property
    def future(self) -> asyncio.Future[Any] | None:
        """The future the session resolves when this task ends (None before submission)."""
        return self._future

    @property
    def done(self) -> bool:
        """True once the task reached DONE, FAILED or CANCELED."""
        return self.state in (TaskState.DONE, TaskState.FAILED, TaskState.CANCELED)

    # Dict-style reads, for code that treats tasks as mappings.
    def __getitem__(self, key: str) -> Any:
        if key.startswith("_") or key not in attrs.fields_dict(type(self)):
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return (
            isinstance(key, str)
            and not key.startswith("_")
            and key in attrs.fields_dict(type(self))
        )

    def get(self, key: str, default: Any = None) -> Any:
        """``task.get("uid")``: like ``dict.get``."""
        try:
            return self[key]
        except KeyError:
            return default

    def to_dict(self) -> dict[str, Any]:
        """Public fields and results as a plain dict."""
        return {a.name: getattr(self, a.name) for a in attrs.fields(type(self)) if a.name[0] != "_"}

    def _describe(self) -> str:
        return ""

    def __repr__(self) -> str:
        backend = f", backend={self.backend!r}" if self.backend else ""
        head = f"{type(self).__name__}(uid={self.uid!r}, state={self.state.value}"
        return f"{head}{self._describe()}{backend})"


@attrs.define(kw_only=True, eq=False, repr=False)
class ComputeTask(BaseTask):
    """An executable (``executable=``, ``arguments=``) or a Python function (``function=``,
    ``args=``, ``kwargs=``, sync or ``async def``) to run on an execution backend."""

    kind: ClassVar[str] = "compute"

    executable: str | os.PathLike[str] | None = attrs.field(default=None, validator=v.optional_path)
    arguments: Sequence[str] = attrs.field(default=(), validator=v.str_sequence)
    function: Callable[..., Any] | None = attrs.field(default=None, validator=v.optional_callable)
    args: Sequence[Any] = attrs.field(default=(), validator=v.positional_args)
    kwargs: Mapping[str, Any] = attrs.field(default=EMPTY_MAPPING, validator=v.str_keyed_mapping)
    capture_stdio: bool = attrs.field(default=False, validator=v.boolean)
    input_files: Sequence[str] = attrs.field(default=(), validator=v.str_sequence)
    output_files: Sequence[str] = attrs.field(default=(), validator=v.str_sequence)

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
    def is_function(self) -> bool:
        """True for a function task, False for an executable."""
        return self.function is not None

    def _describe(self) -> str:
        if self.function is not None:
            return f", function={getattr(self.function, '__qualname__', self.function)!s}"
        return f", executable={os.fspath(self.executable)!r}"  # type: ignore[arg-type]


@attrs.define(kw_only=True, eq=False, repr=False)
class AITask(BaseTask):
    """An inference request for an inference backend; the answer lands on ``.response``
    (a list, in prompt order, when ``prompt`` is a list)."""

    kind: ClassVar[str] = "ai"

    prompt: str | Sequence[str] = attrs.field(validator=v.prompt)
    model: str | None = attrs.field(default=None, validator=v.optional_str)
    inference_endpoint: str | None = attrs.field(default=None, validator=v.optional_str)
    system_prompt: str | None = attrs.field(default=None, validator=v.optional_str)
    temperature: float | None = attrs.field(default=None, validator=v.number_in_range(0.0, 2.0))
    max_tokens: int | None = attrs.field(default=None, validator=v.optional_positive_int)
    top_p: float | None = attrs.field(
        default=None, validator=v.number_in_range(0.0, 1.0, lo_open=True)
    )
    top_k: int | None = attrs.field(default=None, validator=v.optional_top_k)
    stop_sequences: Sequence[str] | None = attrs.field(
        default=None, validator=v.optional_str_sequence
    )

    response: Any = attrs.field(init=False, default=None, on_setattr=_RESULT)
    usage: Mapping[str, Any] | None = attrs.field(init=False, default=None, on_setattr=_RESULT)

    def _describe(self) -> str:
        text = self.prompt if isinstance(self.prompt, str) else f"[{len(self.prompt)} prompts]"
        return f", prompt={text[:40]!r}"


_TASK_CLASSES: dict[str, type[BaseTask]] = {"compute": ComputeTask, "ai": AITask}
_RESULT_FIELDS = frozenset(a.name for a in attrs.fields(AITask) if not a.init) | frozenset(
    a.name for a in attrs.fields(ComputeTask) if not a.init
)


def task_from_dict(description: Mapping[str, Any]) -> BaseTask:
    """Build and validate a task from a plain dict.

    A dict with ``prompt`` becomes an :class:`AITask`, otherwise a :class:`ComputeTask`; an explicit
    ``"type": "compute" | "ai"`` overrides the guess. Unknown keys are rejected.
    """
    if not isinstance(description, Mapping):
        raise TaskValidationError("task", "a ComputeTask, an AITask or a dict", description)
    fields = dict(description)
    kind = fields.pop("type", None) or fields.pop("task_type", None)
    if kind is None:
        kind = "ai" if "prompt" in fields else "compute"
    cls = _TASK_CLASSES.get(str(kind).lower().removesuffix("task"))
    if cls is None:
        raise TaskValidationError("type", "'compute' or 'ai'", kind)
    init_names = {a.alias for a in attrs.fields(cls) if a.init}
    for key in fields:
        if key not in init_names and key not in _RESULT_FIELDS:
            raise TaskValidationError(
                key,
                f"one of the {cls.__name__} fields {sorted(init_names)}",
                fields[key],
                owner=cls.__name__,
            )
    return cls(**{k: val for k, val in fields.items() if k in init_names})
