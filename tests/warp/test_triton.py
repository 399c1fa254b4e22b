"""The Triton kernels against the reference (float64 oracle), forward and backward, and determinism.

Without a GPU the kernels run on CPU tensors under ``TRITON_INTERPRET=1``, on small shapes; with
one they run natively on the same tests. The interpreter must be chosen before ``triton`` is first
imported (its own ``tl.zeros``/``tl.sum`` are decorated then): when another test module imported
triton earlier, this module's tests run in a fresh interpreter process instead
(:func:`test_interpreted_in_subprocess`). The module skips cleanly where triton is not installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

_CHILD = os.environ.get("CAMWARP_TRITON_CHILD") == "1"
IN_PROCESS = torch.cuda.is_available() or _CHILD or "triton" not in sys.modules
if IN_PROCESS and not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"
pytest.importorskip("triton")

from camwarp.warp import dispatch, reference  # noqa: E402
from camwarp.warp import triton as tw  # noqa: E402
from checks import assert_close  # noqa: E402

DEV = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(autouse=True)
def _kernels_run_here(request):
    if request.node.originalname != "test_interpreted_in_subprocess" and not (IN_PROCESS and tw.available()):
        pytest.skip("triton kernels need CUDA, or TRITON_INTERPRET=1 before triton's import (see the subprocess test)")
MODES = ["bilinear", "nearest"]
PADS = ["zeros", "border", "reflection"]


def random_affine(B, d=2, scale=0.3):
    M = torch.eye(d + 1, dtype=torch.float64).repeat(B, 1, 1)
    M[:, :d, :d] += scale * torch.randn(B, d, d, dtype=torch.float64)
    M[:, :d, d] = 2 * torch.randn(B, d, dtype=torch.float64)
    return M


def random_homography(B, W, H):
    M = random_affine(B)
    M[:, 2, :2] = torch.randn(B, 2, dtype=torch.float64) * 0.3 / max(W, H)
    return M


def grads(fn, x, M, size, mode, pad, g):
    x = x.detach().clone().requires_grad_()
    M = M.detach().clone().requires_grad_(mode != "nearest")
    out = fn(x, M, size, mode, pad)
    return (out, *torch.autograd.grad(out, (x, M) if mode != "nearest" else (x,), g.to(out.dtype)))


def compare(op, x, M, size, mode, pad, dtype=torch.float64, layout=torch.contiguous_format):
    """Triton in ``dtype`` on ``DEV`` == the reference in float64 on the same (rounded) inputs."""
    x = x.to(dtype).to(torch.float64)  # the oracle sees exactly the half-precision values
    g = torch.randn(*x.shape[:2], *size[::-1], dtype=torch.float64).to(dtype).to(torch.float64)
    xd = x.to(DEV, dtype)
    if layout != torch.contiguous_format:
        xd = xd.contiguous(memory_format=layout)
    mdtype = torch.float64 if dtype == torch.float64 else torch.float32
    got = grads(getattr(tw, op), xd, M.to(DEV, mdtype), size, mode, pad, g.to(DEV))
    want = grads(getattr(reference, op), x, M.to(mdtype).double(), size, mode, pad, g)
    assert got[0].dtype == dtype and got[0].device.type == DEV
    if layout != torch.contiguous_format:
        assert got[0].is_contiguous(memory_format=layout) and got[1].is_contiguous(memory_format=layout)
    assert_close(got[0].cpu(), want[0], dtype, msg=f"{op} {mode} {pad} {dtype} forward")
    assert_close(got[1].cpu(), want[1], dtype, scale=max(1.0, float(g.abs().max())), msg="grad image")
    if mode != "nearest":  # the matrix gradient is a float32 (float64) sum over every output pixel
        scale = max(1.0, float(want[2].abs().max()))
        assert_close(got[2].cpu().double(), want[2], torch.float32 if dtype != torch.float64 else dtype,
                     scale=scale, msg="grad matrix")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pad", PADS)
def test_affine_float64(mode, pad):
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    compare("sample_affine", x, random_affine(2), (6, 5), mode, pad)
    compare("sample_affine", x, random_affine(2)[:, :2], (5, 8), mode, pad)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pad", PADS)
def test_perspective_float64(mode, pad):
    x = torch.randn(2, 2, 8, 7, dtype=torch.float64)
    compare("sample_perspective", x, random_homography(2, 6, 5), (6, 5), mode, pad)


def test_perspective_behind_camera():
    x = torch.randn(1, 2, 6, 7, dtype=torch.float64)
    M = torch.eye(3, dtype=torch.float64)[None].clone()
    M[0, 2, 0], M[0, 2, 1] = -0.4, 0.03  # w <= 0 from u' = 3 on, |w| >= 0.05 everywhere
    M[0, :2] += 0.05 * torch.randn(2, 3, dtype=torch.float64)
    for pad in PADS:
        compare("sample_perspective", x, M, (7, 6), "bilinear", pad)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pad", PADS)
def test_affine3d_float64(mode, pad):
    x = torch.randn(1, 2, 3, 4, 5, dtype=torch.float64)
    compare("sample_affine3d", x, random_affine(1, d=3, scale=0.2), (4, 3, 2), mode, pad)
    compare("sample_affine3d", x, random_affine(1, d=3, scale=0.2)[:, :3], (2, 3, 3), mode, pad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_low_precision(dtype):
    """float32 within 1e-5 of float64; half precision within its own table entry."""
    x = torch.rand(2, 3, 9, 11, dtype=torch.float64)
    compare("sample_affine", x, random_affine(2), (8, 7), "bilinear", "border", dtype)
    compare("sample_perspective", x, random_homography(2, 8, 7), (8, 7), "bilinear", "zeros", dtype)
    compare("sample_affine3d", x[:1, :, None, :5, :6].expand(1, 3, 3, 5, 6), random_affine(1, d=3, scale=0.1),
            (4, 3, 3), "bilinear", "reflection", dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_channels_last(dtype):
    x = torch.rand(2, 5, 9, 8, dtype=torch.float64)
    compare("sample_affine", x, random_affine(2), (7, 6), "bilinear", "zeros", dtype, torch.channels_last)
    compare("sample_affine", x, random_affine(2), (7, 6), "nearest", "border", dtype, torch.channels_last)


def test_many_channels_loop():
    """More channels than one channel block (16): the in-kernel channel loop and its mask."""
    x = torch.randn(1, 19, 5, 6, dtype=torch.float64)
    compare("sample_affine", x, random_affine(1), (4, 5), "bilinear", "reflection")


def test_backward_is_bit_identical_across_runs():
    """A 3x upscale sends ~9 outputs to each input pixel through atomics; the sums must not vary."""
    x = torch.rand(2, 3, 8, 8, device=DEV)
    M = random_affine(2, scale=0.1).float()
    M[:, :2, :2] /= 3
    M = M.to(DEV)
    g = torch.randn(2, 3, 22, 23, device=DEV)
    runs = []
    for _ in range(3):
        xr, Mr = x.clone().requires_grad_(), M.clone().requires_grad_()
        out = tw.sample_affine(xr, Mr, (23, 22))
        runs.append((out, *torch.autograd.grad(out, (xr, Mr), g)))
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert torch.equal(a, b)


def test_custom_op_schema_and_fake_kernels():
    """``torch.library.opcheck``: schema, fake (meta) kernel and autograd registration agree."""
    x = torch.rand(1, 2, 5, 4, device=DEV, requires_grad=True)
    M = random_affine(1).float().to(DEV).requires_grad_()
    from camwarp.warp.triton import ops
    torch.library.opcheck(ops.sample2d, (x, M, 3, 4, 0, 1, False),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))
    v = torch.rand(1, 1, 3, 4, 5, device=DEV, requires_grad=True)
    A = random_affine(1, d=3, scale=0.1).float().to(DEV).requires_grad_()
    torch.library.opcheck(ops.sample3d, (v, A, 3, 2, 2, 0, 0),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))


def test_unsupported_calls_go_to_reference():
    x = torch.rand(1, 1, 5, 5, dtype=torch.float64, device=DEV)
    M = random_affine(1).to(DEV)
    assert not tw.supports("affine", x, M, "bicubic", "zeros")
    torch.testing.assert_close(tw.sample_affine(x, M, (4, 4), "bicubic"),
                               reference.sample_affine(x, M, (4, 4), "bicubic"))


def test_forced_through_dispatch():
    x = torch.rand(2, 1, 6, 6, device=DEV)
    M = random_affine(2).float().to(DEV)
    assert "triton" in dispatch.available_backends()
    assert_close(dispatch.sample_affine(x, M, (5, 5), backend="triton"),
                 dispatch.sample_affine(x, M, (5, 5), backend="reference"))


@pytest.mark.skipif(IN_PROCESS, reason="the kernels run in this process")
def test_interpreted_in_subprocess():
    """Run this module under ``TRITON_INTERPRET=1`` in a fresh process (triton was imported before)."""
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, TRITON_INTERPRET="1", CAMWARP_TRITON_CHILD="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", str(Path(__file__))],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]

