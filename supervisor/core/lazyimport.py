"""Import a library without paying for modules it imports but only uses later.

click imports inspect (for help text) and structlog imports asyncio (for its
async methods); together they cost ~55 ms of every start while a plain
`sm-entry cmd` never uses them. Inside `deferred(...)`, each named module
that is not yet imported is a stand-in which imports the real module on its
first attribute use, so the library works unchanged, just later.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# What click and structlog import at their top but use only inside functions.
UNUSED_AT_IMPORT = ("asyncio", "inspect")


class _StandIn(types.ModuleType):
    """A module that becomes the real one on first use."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)  # import-machinery probes, not a use
        return getattr(importlib.import_module(self.__name__), name)


@contextmanager
def deferred(names: tuple[str, ...] = UNUSED_AT_IMPORT) -> Iterator[None]:
    installed = {}
    for name in names:
        if name not in sys.modules:
            installed[name] = sys.modules[name] = _StandIn(name, "imported on first use")
    try:
        yield
    finally:
        for name, stand_in in installed.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]
