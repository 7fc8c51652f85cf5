"""``rhapsody.enable_logging()``: send RHAPSODY's log records to a stream (rhapsody-py's helper)."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

DEFAULT_FORMAT = "%(asctime)s | %(levelname)-8s | [%(name)s] | %(message)s"
_HANDLER_NAME = "rhapsody.enable_logging"


def enable_logging(
    level: int | str = logging.INFO,
    format_string: str | None = DEFAULT_FORMAT,
    stream: TextIO | None = None,
    force: bool = True,
) -> None:
    """Log RHAPSODY's records at ``level`` (``logging.DEBUG`` or ``"DEBUG"``) to ``stream``
    (default ``sys.stderr``).

    Only the ``rhapsody`` logger is configured: the root logger and other libraries' logging
    are left alone. Calling it again replaces the handler it added (``force=False`` keeps the
    first one).
    """
    if isinstance(level, str):
        resolved = logging.getLevelName(level.upper())
        if not isinstance(resolved, int):
            raise ValueError(f"enable_logging.level: expected a logging level, got {level!r}")
        level = resolved
    logger = logging.getLogger("rhapsody")
    existing = [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]
    if existing and not force:
        logger.setLevel(level)
        return
    for handler in existing:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter(format_string or DEFAULT_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # one copy of each record, even when the root logger has handlers
