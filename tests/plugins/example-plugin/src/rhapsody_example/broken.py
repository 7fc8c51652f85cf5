"""Entry point ``example_broken``: needs a dependency that is not installed."""

import rhapsody_example_missing_dependency  # noqa: F401
