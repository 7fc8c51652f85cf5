"""The pluggy markers of the ``rhapsody`` hook namespace."""

from __future__ import annotations

import pluggy

PROJECT_NAME = "rhapsody"
LEGACY_ENTRY_POINT_GROUP = "rhapsody.backends"  # rhapsody-py's group of backend classes

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
