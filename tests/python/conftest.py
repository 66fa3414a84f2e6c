"""pytest fixtures: one fresh daemon per test (temp dir, port 0, SIGTERM at teardown)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bridge_harness import BridgeDaemon  # noqa: E402


@pytest.fixture
def daemon(tmp_path):
    d = BridgeDaemon(tmp_path)
    d.start()
    try:
        yield d
    finally:
        code = d.stop()
        d.kill()
    assert code == 0, f"daemon exited with {code} on SIGTERM\n{d.log_tail()}"
