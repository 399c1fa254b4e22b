"""STN tests run many tiny convolutions: one intra-op thread avoids thread hand-off costs that
dominate them on a busy 2-core machine (measured 0.07 s vs 1-3 s per step). Restored afterwards."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
