import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pytest

from tests.support import SOURCE_COMMAND, STATIC_BINARY, require_binary


@pytest.fixture(params=["source", "static"])
def sm_entry(request) -> list[str]:
    """sm-entry as a command prefix: from source, and as the built static binary."""
    if request.param == "source":
        return list(SOURCE_COMMAND)
    return [require_binary(STATIC_BINARY)]


@pytest.fixture
def static_only() -> str:
    return require_binary(STATIC_BINARY)
