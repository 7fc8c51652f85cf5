"""What code written for rhapsody-py 0.6 reaches, kept working as thin layers over RHAPSODY.

* :mod:`.states` -- ``TasksMainStates``, ``BackendMainStates``, ``StateMapper``;
* :mod:`.backend_methods` -- the rhapsody-py methods every RHAPSODY backend also answers
  (``register_callback``, ``state()``, ``cancel_task(uid)``...);
* :mod:`.legacy_backend` -- rhapsody-py's ``BaseBackend`` contract, and the one adapter that runs
  a backend written against it inside a RHAPSODY session;
* :mod:`.registry` -- ``BackendRegistry`` and the ``rhapsody.backends`` entry-point group;
* :mod:`.logging_setup` -- ``enable_logging``.

The modules at rhapsody-py's import paths (``rhapsody.backends.constants``,
``rhapsody.backends.execution.concurrent``...) re-export from here. docs/coming-from-rhapsody-py.md
says what maps to what.
"""
