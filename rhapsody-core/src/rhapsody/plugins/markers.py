"""The pluggy markers of the ``rhapsody`` hook namespace."""

from __future__ import annotations

import pluggy

PROJECT_NAME = "rhapsody"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
