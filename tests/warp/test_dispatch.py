"""The dispatcher's rule table: automatic choices, forcing by argument and environment, determinism."""

from __future__ import annotations

import pytest
import torch

import camwarp
from camwarp.warp import antialias, dispatch, reference
from checks import assert_close

HAS_CPU = "cpu" in dispatch.available_backends()
needs_cpu = pytest.mark.skipif(not HAS_CPU, reason="numba is not installed")


def random_affine(B, dtype=torch.float64):
    M = torch.eye(3, dtype=dtype).repeat(B, 1, 1)
    M[:, :2, :2] += 0.3 * torch.randn(B, 2, 2, dtype=dtype)
    M[:, :2, 2] = 2 * torch.randn(B, 2, dtype=dtype)
    return M


def chosen(op="affine", x=None, M=None, mode="bilinear", padding_mode="zeros", backend=None):
    x = torch.rand(2, 3, 8, 9) if x is None else x
    M = random_affine(2, x.dtype if x.is_floating_point() else torch.float32) if M is None else M
    return dispatch.get_backend(op, x, M, mode, padding_mode, backend).__name__.rsplit(".", 1)[-1]


def test_reference_is_always_available_and_first():
    assert dispatch.available_backends()[0] == "reference"


@needs_cpu
def test_cpu_rules():
    assert chosen() == "cpu"
    assert chosen("perspective") == "cpu"
    assert chosen("affine3d", torch.rand(1, 1, 3, 4, 5), torch.eye(4)[None]) == "cpu"
    assert chosen(x=torch.rand(2, 3, 8, 9, dtype=torch.float64)) == "cpu"
    assert chosen(mode="bicubic") == "reference"  # no compiled bicubic
    assert chosen(x=torch.rand(2, 3, 8, 9).half()) == "reference"  # half precision: torch only


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_rules():
    x = torch.rand(2, 3, 8, 9, device="cuda", requires_grad=True)
    M = random_affine(2, torch.float32).cuda()
    assert chosen(x=x, M=M) == "reference"  # Triton is opt-in until its GPU timings are recorded
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        expected = "triton" if "triton" in dispatch.available_backends() else "reference"
        assert chosen(x=x, M=M) == expected  # torch's CUDA grid_sample backward is nondeterministic
    finally:
        torch.use_deterministic_algorithms(previous)


def test_forced_backend_argument():
    for name in dispatch.available_backends():
        assert chosen(backend=name) == name
    with pytest.raises(ValueError, match=r"sample_affine: backend must be None or one of 'reference'"):
        dispatch.sample_affine(torch.rand(1, 1, 4, 4), torch.eye(3)[None], (4, 4), backend="cuda-magic")
    with pytest.raises(ValueError, match="backend"):
        dispatch.sample_affine(torch.rand(1, 1, 4, 4), torch.eye(3)[None], (4, 4), backend=3)


def test_environment_variable(monkeypatch):
    monkeypatch.setenv(dispatch.ENV_VAR, "reference")
    assert chosen() == "reference"
    monkeypatch.setenv(dispatch.ENV_VAR, "auto")
    assert chosen() == ("cpu" if HAS_CPU else "reference")
    monkeypatch.setenv(dispatch.ENV_VAR, "")
    assert chosen() == ("cpu" if HAS_CPU else "reference")
    if HAS_CPU:
        monkeypatch.setenv(dispatch.ENV_VAR, "reference")
        assert chosen(backend="cpu") == "cpu"  # the argument wins over the environment
    monkeypatch.setenv(dispatch.ENV_VAR, "nope")
    with pytest.raises(ValueError, match="sample_perspective: environment variable CAMWARP_BACKEND must be"):
        dispatch.sample_perspective(torch.rand(1, 1, 4, 4), torch.eye(3)[None], (4, 4))


@pytest.mark.parametrize("backend", dispatch.available_backends())
def test_every_backend_same_result_through_public_api(backend):
    """The public functions forward ``backend=``; every backend equals the reference."""
    x = torch.rand(2, 3, 10, 12, dtype=torch.float64)
    A = camwarp.geometry.rotate_matrix(17.0, (5.5, 4.5), 1.3, dtype=torch.float64)
    out = camwarp.warp_affine(x, A, (9, 8), backend=backend)
    assert_close(out, camwarp.warp_affine(x, A, (9, 8), backend="reference"), torch.float64)
    v = torch.rand(1, 2, 4, 5, 6, dtype=torch.float64)
    A3 = torch.eye(4, dtype=torch.float64)
    A3[:3, 3] = torch.tensor([0.3, -0.2, 0.4])
    assert_close(camwarp.warp_affine3d(v, A3, (5, 4, 3), backend=backend),
                 camwarp.warp_affine3d(v, A3, (5, 4, 3), backend="reference"), torch.float64)


@needs_cpu
def test_deterministic_mode_is_honoured_on_cpu():
    """Deterministic mode keeps the CPU fast path (deterministic) and its bits are repeatable."""
    x = torch.rand(4, 3, 16, 16, requires_grad=True)
    M = random_affine(4, torch.float32).requires_grad_()
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        assert chosen(x=x, M=M) == "cpu"
        runs = []
        for _ in range(2):
            out = dispatch.sample_affine(x, M, (13, 11), "bilinear", "border")
            runs.append((out, *torch.autograd.grad(out.square().sum(), (x, M))))
    finally:
        torch.use_deterministic_algorithms(previous)
    assert all(torch.equal(a, b) for a, b in zip(*runs))


@pytest.mark.parametrize("backend", [None, "reference"])
@pytest.mark.parametrize("kernel", ["bilinear", "bicubic", "area"])
def test_resample_separable_dispatch(backend, kernel):
    x = torch.rand(2, 3, 20, 18, dtype=torch.float64)
    scale = torch.tensor([[2.0, 1.5], [0.7, 3.0]], dtype=torch.float64)
    offset = torch.tensor([[0.5, 0.25], [-0.15, 1.0]], dtype=torch.float64)
    out = dispatch.resample_separable(x, scale, offset, (9, 7), kernel, backend=backend)
    assert_close(out, antialias.resample_separable(x, scale, offset, (9, 7), kernel), torch.float64)


@needs_cpu
def test_crop_resize_uses_the_fast_separable_path():
    """``crop_resize``: the antialiased separable path and the plain path both equal the oracle."""
    x = torch.rand(1, 3, 40, 60)
    for antialias_flag in (True, False):
        fast = camwarp.crop_resize(x, (3.5, 2.0, 48.0, 30.0), (24, 15), antialias=antialias_flag)
        ref = camwarp.crop_resize(x, (3.5, 2.0, 48.0, 30.0), (24, 15), antialias=antialias_flag,
                                  backend="reference")
        assert_close(fast, ref, torch.float32)


def test_reference_module_is_the_oracle():
    x = torch.rand(1, 1, 5, 5, dtype=torch.float64)
    M = random_affine(1)
    assert torch.equal(dispatch.sample_affine(x, M, (4, 4), backend="reference"),
                       reference.sample_affine(x, M, (4, 4)))
