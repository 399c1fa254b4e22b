"""Shared pytest set-up: deterministic seeds, hypothesis profile, optional-dependency markers."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# CI and `./run test` are reproducible (derandomize: the same examples every run); run
# `HYPOTHESIS_PROFILE=explore ./run test` to search fresh random examples (more of them).
settings.register_profile("camwarp", deadline=None, max_examples=40, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", deadline=None, max_examples=400,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "camwarp"))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """Run the test on one intra-op thread, then restore the count: tiny models run fastest on one
    thread (and leave the other cores to other tests). Use: ``pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
