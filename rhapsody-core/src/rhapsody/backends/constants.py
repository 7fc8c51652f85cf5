"""rhapsody-py's ``rhapsody.backends.constants``: task and backend state names, StateMapper."""

from ..compat.states import BackendMainStates, StateMapper, TasksMainStates

__all__ = ["BackendMainStates", "StateMapper", "TasksMainStates"]
