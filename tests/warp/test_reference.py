"""The internal dst->src samplers (every backend) against torch's own ``affine_grid``/``grid_sample``."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F

from camwarp.errors import SingularMatrixError
from camwarp.geometry import invert, matrix_to_theta
from camwarp.warp import dispatch, reference
from camwarp.warp.dispatch import available_backends
from checks import assert_close

BACKENDS = available_backends()
SIZES = [((1, 1), (1, 1)), ((13, 7), (11, 9)), ((13, 7), (5, 1)), ((8, 8), (17, 3))]  # ((W, H), (W', H'))


def random_affine(B: int, dtype=torch.float64, d: int = 2, scale: float = 0.3) -> torch.Tensor:
    """Near-identity invertible (B, d+1, d+1) matrices with a translation of a few pixels."""
    M = torch.eye(d + 1, dtype=dtype).repeat(B, 1, 1)
    M[:, :d, :d] += scale * torch.randn(B, d, d, dtype=dtype)
    M[:, :d, d] = 2 * torch.randn(B, d, dtype=dtype)
    return M


def random_homography(B: int, W: int, H: int, dtype=torch.float64) -> torch.Tensor:
    """dst->src homographies with ``w > 0.5`` over a ``(W, H)`` output (no point behind the camera)."""
    M = random_affine(B, dtype)
    M[:, 2, :2] = torch.randn(B, 2, dtype=dtype) * 0.2 / max(W, H)
    return M


def torch_oracle(x: torch.Tensor, src_from_dst: torch.Tensor, size, mode: str, padding_mode: str) -> torch.Tensor:
    """``grid_sample(affine_grid(theta))`` with theta from camwarp's public ``matrix_to_theta``."""
    in_size = tuple(x.shape[:1:-1])
    theta = matrix_to_theta(invert(src_from_dst), in_size, size)
    grid = F.affine_grid(theta, [x.shape[0], x.shape[1], *size[::-1]], align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=False)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("sizes", SIZES)
def test_sample_affine_matches_grid_sample(backend, mode, padding_mode, sizes):
    (W, H), size = sizes
    x = torch.rand(3, 2, H, W, dtype=torch.float64)
    M = random_affine(3)
    out = dispatch.sample_affine(x, M, size, mode, padding_mode, backend=backend)
    assert out.shape == (3, 2, size[1], size[0]) and out.dtype == torch.float64
    torch.testing.assert_close(out, torch_oracle(x, M, size, mode, padding_mode), atol=1e-8, rtol=0)
    # A (B, 2, 3) matrix is the same map.
    torch.testing.assert_close(dispatch.sample_affine(x, M[:, :2], size, mode, padding_mode, backend=backend), out,
                               atol=1e-12, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
def test_sample_affine3d_matches_grid_sample(backend, mode, padding_mode):
    x = torch.rand(2, 3, 5, 7, 6, dtype=torch.float64)  # (B, C, D, H, W)
    M = random_affine(2, d=3)
    size = (4, 9, 3)
    out = dispatch.sample_affine3d(x, M, size, mode, padding_mode, backend=backend)
    theta = matrix_to_theta(invert(M), (6, 7, 5), size)
    grid = F.affine_grid(theta, [2, 3, 3, 9, 4], align_corners=False)
    ref = F.grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=False)
    assert out.shape == (2, 3, 3, 9, 4)
    torch.testing.assert_close(out, ref, atol=1e-8, rtol=0)
    torch.testing.assert_close(dispatch.sample_affine3d(x, M[:, :3], size, mode, padding_mode, backend=backend), out)


def test_sample_affine3d_axis_order():
    # A translation by +1 along u (width) moves content one voxel along the last tensor dim.
    x = torch.rand(1, 1, 3, 4, 5, dtype=torch.float64)
    M = torch.eye(4, dtype=torch.float64)[None].clone()
    M[0, 0, 3] = 1.0  # output (u, v, w) reads input (u + 1, v, w)
    out = dispatch.sample_affine3d(x, M, (5, 4, 3))
    torch.testing.assert_close(out[..., :-1], x[..., 1:])
    M = torch.eye(4, dtype=torch.float64)[None].clone()
    M[0, 2, 3] = 1.0  # along w (depth): the first spatial tensor dim
    out = dispatch.sample_affine3d(x, M, (5, 4, 3))
    torch.testing.assert_close(out[:, :, :-1], x[:, :, 1:])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
def test_sample_perspective_matches_pixelwise_oracle(backend, mode):
    W, H, size = 13, 7, (11, 9)
    x = torch.rand(2, 3, H, W, dtype=torch.float64)
    M = random_homography(2, *size)
    out = dispatch.sample_perspective(x, M, size, mode, "zeros", backend=backend)
    # Oracle: every output pixel (u', v') mapped one by one, then normalized with x = (2u + 1)/W - 1.
    v, u = torch.meshgrid(torch.arange(size[1], dtype=torch.float64), torch.arange(size[0], dtype=torch.float64),
                          indexing="ij")
    p = torch.stack([u, v, torch.ones_like(u)], -1)  # (H', W', 3)
    q = torch.einsum("bij,hwj->bhwi", M, p)
    src = q[..., :2] / q[..., 2:]
    grid = torch.stack([(2 * src[..., 0] + 1) / W - 1, (2 * src[..., 1] + 1) / H - 1], -1)
    ref = F.grid_sample(x, grid, mode=mode, align_corners=False)
    torch.testing.assert_close(out, ref, atol=1e-8, rtol=0)


def test_sample_perspective_of_affine_is_sample_affine():
    x = torch.rand(2, 1, 9, 10, dtype=torch.float64)
    M = random_affine(2)
    torch.testing.assert_close(dispatch.sample_perspective(x, M, (7, 8)), dispatch.sample_affine(x, M, (7, 8)),
                               atol=1e-12, rtol=0)


def test_sample_perspective_behind_camera_is_outside():
    x = torch.ones(1, 1, 5, 5, dtype=torch.float64, requires_grad=True)
    M = torch.eye(3, dtype=torch.float64)[None].clone()
    M[0, 2, 0] = -0.5  # w = 1 - u/2 <= 0 for u >= 2
    M.requires_grad_(True)
    out = dispatch.sample_perspective(x, M, (5, 5))
    assert torch.isfinite(out).all()
    assert (out[..., 2:] == 0).all() and (out[..., 0] > 0).all()
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(M.grad).all()


@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "nearest"])
def test_gradcheck_sample_affine(mode):
    x = torch.rand(2, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    M = random_affine(2, scale=0.1).requires_grad_(mode != "nearest")
    assert torch.autograd.gradcheck(lambda a, m: dispatch.sample_affine(a, m, (3, 4), mode, "border"), (x, M))


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_gradcheck_sample_perspective(mode):
    x = torch.rand(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    M = random_homography(1, 3, 4).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, m: dispatch.sample_perspective(a, m, (3, 4), mode, "zeros"), (x, M))


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_gradcheck_sample_affine3d(mode):
    x = torch.rand(1, 1, 3, 4, 3, dtype=torch.float64, requires_grad=True)
    M = random_affine(1, d=3, scale=0.1).requires_grad_(mode != "nearest")
    assert torch.autograd.gradcheck(lambda a, m: dispatch.sample_affine3d(a, m, (3, 2, 2), mode, "reflection"), (x, M))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_low_precision_follows_float64(dtype):
    x = torch.rand(2, 3, 30, 40, dtype=torch.float64)
    M = random_affine(2)
    ref = dispatch.sample_affine(x, M, (25, 21), "bilinear", "zeros")
    out = dispatch.sample_affine(x.to(dtype), M.to(torch.float32), (25, 21), "bilinear", "zeros")
    assert out.dtype == dtype and out.shape == ref.shape
    assert_close(out.double(), ref, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_wide_image_subpixel_accuracy(dtype):
    # grid_sample un-normalizes in the image's dtype: a float32 sample position on a 4000 px wide
    # image is good to ~W * 2^-24 px (values to ~3e-4 here); float64 is exact.
    x = torch.rand(1, 1, 2, 4000, dtype=dtype)
    M = torch.eye(3, dtype=torch.float64)[None].clone()
    M[0, 0, 2] = 0.25
    out = dispatch.sample_affine(x, M, (3999, 2), "bilinear", "border")
    ref = 0.75 * x[..., :-1] + 0.25 * x[..., 1:]
    torch.testing.assert_close(out, ref, atol=1e-12 if dtype == torch.float64 else 4000 * 2.0**-24, rtol=0)


def test_backends_share_signatures():
    for name in BACKENDS:
        module = dispatch._load(name)
        for fn in ("sample_affine", "sample_perspective", "sample_affine3d"):
            want = inspect.signature(getattr(reference, fn))
            assert inspect.signature(getattr(module, fn)) == want, (name, fn)
            public = inspect.signature(getattr(dispatch, fn))
            assert list(public.parameters)[:-1] == list(want.parameters) and "backend" in public.parameters


def test_dispatch_rules_and_errors():
    assert BACKENDS[0] == "reference"
    x, M = torch.rand(1, 1, 3, 3), torch.eye(3)[None]
    assert dispatch.get_backend("affine", x, M, "bilinear", "zeros") is not None
    assert dispatch.get_backend("affine", x, M, "bilinear", "zeros", backend="reference") is reference
    with pytest.raises(ValueError, match="sample_affine: backend must be"):
        dispatch.sample_affine(x, M, (3, 3), backend="nope")
    with pytest.raises(ValueError, match="sample_affine3d: backend"):
        dispatch.sample_affine3d(torch.rand(1, 1, 2, 2, 2), torch.eye(4)[None], (2, 2, 2), backend=3)


def test_singular_matrix_is_refused_before_sampling():
    # The samplers take dst->src matrices and never invert; the public API inverts with a named error.
    from camwarp import warp_affine
    with pytest.raises(SingularMatrixError, match="warp_affine: A is singular"):
        warp_affine(torch.rand(1, 3, 3), torch.diag(torch.tensor([0.0, 1.0, 1.0])), (3, 3))
