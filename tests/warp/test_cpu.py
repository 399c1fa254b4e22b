"""The numba CPU backend against the reference (float64 oracle), forward and backward.

Every comparison runs the reference (``F.affine_grid`` + ``F.grid_sample``) on the same inputs in
float64 and compares values and both gradients; float32 runs compare to the float64 oracle with
the float32 tolerance. Determinism: repeat runs and different thread counts give identical bits.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

cpu = pytest.importorskip("camwarp.warp.cpu", reason="numba is not installed")

from camwarp.warp import antialias, dispatch, reference  # noqa: E402
from camwarp.warp.cpu import _sample2d  # noqa: E402
from checks import assert_close, check_op  # noqa: E402

MODES = ["bilinear", "nearest"]
PADS = ["zeros", "border", "reflection"]
SHAPES = [((1, 1), (1, 1)), ((9, 7), (6, 5)), ((13, 4), (17, 11)), ((5, 12), (1, 3))]  # ((W, H), (W', H'))


def random_affine(B, d=2, scale=0.3, dtype=torch.float64):
    M = torch.eye(d + 1, dtype=dtype).repeat(B, 1, 1)
    M[:, :d, :d] += scale * torch.randn(B, d, d, dtype=dtype)
    M[:, :d, d] = 2 * torch.randn(B, d, dtype=dtype)
    return M


def random_homography(B, W, H, dtype=torch.float64):
    M = random_affine(B, dtype=dtype)
    M[:, 2, :2] = torch.randn(B, 2, dtype=dtype) * 0.3 / max(W, H)
    return M


def run(fn, x, M, size, mode, pad, grad_out):
    """Output and gradients wrt ``x`` and ``M`` of ``fn`` for the cotangent ``grad_out``."""
    x = x.detach().clone().requires_grad_()
    M = M.detach().clone().requires_grad_(mode != "nearest")
    out = fn(x, M, size, mode, pad)
    grads = torch.autograd.grad(out, (x, M) if mode != "nearest" else (x,), grad_out)
    return out, grads


def compare(op, x, M, size, mode, pad, dtype=torch.float64):
    """The CPU backend in ``dtype`` == the reference in float64, values and gradients."""
    fast = getattr(cpu, op)
    ref = getattr(reference, op)
    B, C = x.shape[:2]
    g = torch.randn(B, C, *size[::-1], dtype=torch.float64)
    out, grads = run(fast, x.to(dtype), M.to(dtype), size, mode, pad, g.to(dtype))
    out_ref, grads_ref = run(ref, x, M, size, mode, pad, g)
    assert out.dtype == dtype
    assert_close(out, out_ref, dtype, msg=f"{op} {mode} {pad} forward")
    # Gradient sums grow with the number of output pixels: scale the tolerance by it.
    assert_close(grads[0], grads_ref[0], dtype, msg="grad image")
    if mode != "nearest":
        scale = max(1.0, float(grads_ref[1].abs().max()))
        assert_close(grads[1], grads_ref[1], dtype, scale=scale, msg="grad matrix")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pad", PADS)
@pytest.mark.parametrize("shapes", SHAPES)
def test_affine_matches_reference(mode, pad, shapes):
    (W, H), size = shapes
    x = torch.randn(3, 2, H, W, dtype=torch.float64)
    compare("sample_affine", x, random_affine(3), size, mode, pad)
    compare("sample_affine", x, random_affine(3)[:, :2], size, mode, pad)  # (B, 2, 3)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pad", PADS)
def test_perspective_matches_reference(mode, pad):
    x = torch.randn(2, 3, 9, 11, dtype=torch.float64)
    compare("sample_perspective", x, random_homography(2, 8, 7), (8, 7), mode, pad)


@pytest.mark.parametrize("pad", PADS)
def test_perspective_behind_camera(pad):
    """Points with ``w <= 0`` read the reference's far-away constant and carry no matrix gradient."""
    x = torch.randn(1, 2, 6, 7, dtype=torch.float64)
    M = torch.eye(3, dtype=torch.float64)[None].clone()
    M[0, 2, 0] = -0.4  # w = 1 - 0.4 u' + 0.03 v' <= 0 from u' = 3 on, and |w| >= 0.05 at every pixel
    M[0, 2, 1] = 0.03
    M[0, :2] += 0.05 * torch.randn(2, 3, dtype=torch.float64)  # off the integer lattice: no bilinear kinks
    compare("sample_perspective", x, M, (7, 6), "bilinear", pad)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pad", PADS)
def test_affine3d_matches_reference(mode, pad):
    x = torch.randn(2, 2, 5, 6, 7, dtype=torch.float64)
    compare("sample_affine3d", x, random_affine(2, d=3, scale=0.2), (6, 5, 4), mode, pad)
    compare("sample_affine3d", x, random_affine(2, d=3, scale=0.2)[:, :3], (3, 4, 5), mode, pad)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pad", PADS)
def test_axis_aligned_maps_take_the_separable_path(mode, pad):
    """Crops, resizes and flips (any real scale, negative too) equal the reference, both ways."""
    x = torch.randn(3, 2, 9, 13, dtype=torch.float64)
    M = torch.zeros(3, 3, 3, dtype=torch.float64)
    M[:, 0, 0] = torch.tensor([2.3, -0.6, 1.0])
    M[:, 1, 1] = torch.tensor([0.45, 1.7, -1.0])
    M[:, :2, 2] = torch.tensor([[0.6, -1.3], [11.2, 2.4], [0.3, 7.6]])  # off-lattice: no bilinear kinks
    M[:, 2, 2] = 1
    assert _sample2d._axis_aligned(_sample2d.fold_matrix(M, 2, (13, 9)))
    compare("sample_affine", x, M, (7, 8), mode, pad)
    # Image gradient only: the separable adjoint.
    g = torch.randn(3, 2, 8, 7, dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, ref = cpu.sample_affine(xa, M, (7, 8), mode, pad), reference.sample_affine(xb, M, (7, 8), mode, pad)
    assert_close(out, ref, torch.float64)
    assert_close(torch.autograd.grad(out, xa, g)[0], torch.autograd.grad(ref, xb, g)[0], torch.float64)


def test_reference_last_row_semantics():
    """A (B, 3, 3) affine call reads the last row exactly as the reference (value and gradient)."""
    x = torch.randn(2, 1, 6, 8, dtype=torch.float64)
    M = random_affine(2)
    M[:, 2] = torch.tensor([0.01, -0.02, 0.97], dtype=torch.float64)
    compare("sample_affine", x, M, (5, 6), "bilinear", "zeros")


@pytest.mark.parametrize("op", ["sample_affine", "sample_perspective"])
def test_float32_within_tolerance_of_float64(op):
    x = torch.rand(4, 3, 17, 19, dtype=torch.float64)
    M = random_homography(4, 15, 13) if op == "sample_perspective" else random_affine(4)
    compare(op, x, M, (15, 13), "bilinear", "border", dtype=torch.float32)


def test_float32_3d_within_tolerance():
    x = torch.rand(2, 2, 7, 6, 5, dtype=torch.float64)
    compare("sample_affine3d", x, random_affine(2, d=3, scale=0.2), (5, 6, 7), "bilinear", "zeros",
            dtype=torch.float32)


@pytest.mark.parametrize("kernel", ["bilinear", "bicubic", "area"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_resample_separable_matches_antialias(kernel, dtype):
    """``crop_resize``'s filters: the compiled passes equal the torch oracle, down- and upscaling."""
    x = torch.rand(2, 3, 23, 31, dtype=dtype)
    scale = torch.tensor([[2.7, 0.6], [1.0, 3.2]], dtype=dtype)
    offset = torch.tensor([[-1.2, 0.4], [4.3, -2.0]], dtype=dtype)
    out = cpu.resample_separable(x.requires_grad_(), scale, offset, (12, 9), kernel)
    ref = antialias.resample_separable(x, scale, offset, (12, 9), kernel)
    assert_close(out, ref, dtype)
    g = torch.randn_like(out)
    assert_close(torch.autograd.grad(out, x, g)[0], torch.autograd.grad(ref, x, g)[0], dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_resample_separable_2x_shrink_pairs_rows(dtype):
    """A 2x triangle shrink (4 horizontal taps: two rows share them) with an odd number of rows and
    items that differ equals the oracle, also computed in row ranges of odd lengths (threads)."""
    from camwarp.warp.cpu import _separable

    x = torch.rand(3, 2, 22, 30, dtype=dtype)
    scale = torch.tensor([[2.0, 2.0], [2.0, 1.9], [2.0, 2.2]], dtype=dtype)
    offset = torch.tensor([[0.5, 0.5], [1.5, -0.3], [0.5, 0.7]], dtype=dtype)
    ref = antialias.resample_separable(x, scale, offset, (15, 11), "bilinear")
    assert_close(cpu.resample_separable(x, scale, offset, (15, 11), "bilinear"), ref, dtype)
    like = x[:0].numpy()
    ix, wx = cpu._tables(scale[:, 0], offset[:, 0], 15, 30, "bilinear", like)
    iy, wy = cpu._tables(scale[:, 1], offset[:, 1], 11, 22, "bilinear", like)
    assert wx.shape[2] == 4
    out = torch.empty(3, 2, 11, 15, dtype=dtype)
    for lo, hi in ((0, 5), (5, 16), (16, 33), (33, 66)):  # rows (b C + c) H' + y
        _separable.forward(x.numpy(), iy, wy, ix, wx, _separable.spans(ix, wx), out.numpy(), lo, hi)
    assert_close(out, ref, dtype)


def test_resample_separable_grad_in_box_uses_oracle():
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    scale = torch.tensor([[2.0, 2.0]], dtype=torch.float64, requires_grad=True)
    offset = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    out = cpu.resample_separable(x, scale, offset, (4, 4))
    assert out.grad_fn is not None and out.requires_grad  # differentiable in scale, via the oracle


@pytest.mark.parametrize("op", ["sample_affine", "sample_perspective", "sample_affine3d"])
def test_check_op_contract(op):
    """Inputs untouched, dtype kept, batched == loop, empty batch, float64 gradcheck."""
    d = 3 if op == "sample_affine3d" else 2
    x = torch.rand(3, 2, *([5] * d), dtype=torch.float64)
    M = random_homography(3, 4, 4) if op == "sample_perspective" else random_affine(3, d=d, scale=0.1)
    size = (4, 3, 2) if d == 3 else (4, 3)

    def fn(a, m):  # the internal API takes a flat batch: check_op's per-item calls get one added
        one = a.dim() == d + 1
        out = getattr(cpu, op)(a[None] if one else a, m[None] if one else m, size, "bilinear", "border")
        return out[0] if one else out

    check_op(fn, x, M)


def test_layouts_and_noncontiguous_inputs():
    x = torch.rand(2, 3, 11, 9, dtype=torch.float64)
    M = random_affine(2)
    ref = reference.sample_affine(x, M, (7, 6), "bilinear", "reflection")
    for y in (x.contiguous(memory_format=torch.channels_last), x.transpose(-1, -2).contiguous().transpose(-1, -2)):
        assert_close(cpu.sample_affine(y, M, (7, 6), "bilinear", "reflection"), ref)
    assert_close(cpu.sample_affine(x, M.transpose(1, 2).contiguous().transpose(1, 2), (7, 6), "bilinear",
                                   "reflection"), ref)


@pytest.mark.parametrize("op", ["sample_affine", "sample_affine3d"])
def test_backward_is_bit_identical_across_runs_and_threads(op, monkeypatch):
    """Many outputs hit each input pixel (a 3x upscale plus rotation); sums must not depend on order."""
    monkeypatch.setattr(cpu._parallel, "_MIN_WORK", 1)  # split even these small calls between threads
    d = 3 if op == "sample_affine3d" else 2
    x = torch.rand(2, 3, *([9] * d), dtype=torch.float32)
    M = random_affine(2, d=d, scale=0.1, dtype=torch.float32)
    M[:, :d, :d] /= 3
    size = (25, 24, 23)[:d]
    g = torch.randn(2, 3, *size[::-1])
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2, 2, 3):
            torch.set_num_threads(n)
            xr, Mr = x.clone().requires_grad_(), M.clone().requires_grad_()
            out = getattr(cpu, op)(xr, Mr, size, "bilinear", "zeros")
            results.append((out, *torch.autograd.grad(out, (xr, Mr), g)))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)


def test_unsupported_calls_go_to_reference():
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64)
    M = random_affine(1)
    assert not cpu.supports("affine", x, M, "bicubic", "zeros")
    assert torch.equal(cpu.sample_affine(x, M, (5, 5), "bicubic"), reference.sample_affine(x, M, (5, 5), "bicubic"))
    h = x.to(torch.bfloat16)
    assert not cpu.supports("affine", h, M, "bilinear", "zeros")
    assert torch.equal(cpu.sample_affine(h, M, (5, 5)), reference.sample_affine(h, M, (5, 5)))


@settings(max_examples=25)
@given(W=st.integers(1, 12), H=st.integers(1, 12), Wo=st.integers(1, 12), Ho=st.integers(1, 12),
       seed=st.integers(0, 2**16), mode=st.sampled_from(MODES), pad=st.sampled_from(PADS))
def test_random_shapes_property(W, H, Wo, Ho, seed, mode, pad):
    torch.manual_seed(seed)
    x = torch.randn(2, 2, H, W, dtype=torch.float64)
    M = random_affine(2, scale=0.5)
    M[:, :2, 2] *= 3
    compare("sample_affine", x, M, (Wo, Ho), mode, pad)


def grid_sample_theta(x, theta, size, mode, pad):
    """torch's own STN sampler, the oracle of ``sample_theta``."""
    grid = F.affine_grid(theta, [x.shape[0], x.shape[1], size[1], size[0]], align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode=pad, align_corners=False)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pad", PADS)
@pytest.mark.parametrize("shapes", SHAPES + [((28, 28), (28, 28))])
def test_sample_theta_matches_grid_sample(mode, pad, shapes):
    """The STN entry (theta straight to the kernels) == affine_grid + grid_sample: values, both grads."""
    (W, H), size = shapes
    x = torch.randn(3, 2, H, W, dtype=torch.float64)
    theta = torch.eye(2, 3, dtype=torch.float64) + 0.3 * torch.randn(3, 2, 3, dtype=torch.float64)
    g = torch.randn(3, 2, *size[::-1], dtype=torch.float64)
    ref, ref_grads = run(grid_sample_theta, x, theta, size, mode, pad, g)
    for dtype in (torch.float64, torch.float32):
        out, grads = run(cpu.sample_theta, x.to(dtype), theta.to(dtype), size, mode, pad, g.to(dtype))
        assert out.dtype == dtype
        assert_close(out, ref, dtype, msg=f"{mode} {pad} {dtype} forward")
        assert_close(grads[0], ref_grads[0], dtype, msg="grad image")
        if mode != "nearest":
            scale = max(1.0, float(ref_grads[1].abs().max()))
            assert_close(grads[1], ref_grads[1], dtype, scale=scale, msg="grad theta")


def test_sample_theta_dispatch_and_determinism(monkeypatch):
    """``dispatch.sample_theta`` picks the CPU entry, equals the reference backend, and its backward
    is bit-identical across runs and thread counts (upscale: many outputs per input pixel)."""
    monkeypatch.setattr(cpu._parallel, "_MIN_WORK", 1)
    x = torch.rand(2, 1, 9, 9)
    theta = torch.eye(2, 3).repeat(2, 1, 1) * 0.4 + 0.02 * torch.randn(2, 2, 3)
    g = torch.randn(2, 1, 31, 29)
    assert_close(dispatch.sample_theta(x, theta, (29, 31)),
                 dispatch.sample_theta(x, theta, (29, 31), backend="reference"), torch.float32)
    results, threads = [], torch.get_num_threads()
    try:
        for n in (1, 2, 2, 3):
            torch.set_num_threads(n)
            xr, tr = x.clone().requires_grad_(), theta.clone().requires_grad_()
            out = dispatch.sample_theta(xr, tr, (29, 31))
            results.append((out, *torch.autograd.grad(out, (xr, tr), g)))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)


def _warp_in_child(queue, x, M):
    torch.set_num_threads(2)
    queue.put(cpu.sample_affine(x, M, (300, 200), "bilinear", "zeros").numpy())  # by value, not shared memory


def test_forked_child_runs_after_parent_used_threads():
    """A DataLoader-style forked child after the parent ran threaded kernels: same result, no abort.

    GNU OpenMP is not fork-safe (numba's OpenMP layer kills such a child); the child runs serially.
    """
    import multiprocessing

    x = torch.rand(2, 3, 150, 160)
    M = random_affine(2, scale=0.1, dtype=torch.float32)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        parent = cpu.sample_affine(x, M, (300, 200), "bilinear", "zeros")
    finally:
        torch.set_num_threads(threads)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_warp_in_child, args=(queue, x, M))
    child.start()
    out = queue.get(timeout=120)
    child.join(timeout=60)
    assert child.exitcode == 0  # serial in the child: equal up to rounding (another compiled path)
    assert_close(torch.from_numpy(out), parent, torch.float32)


@pytest.mark.parametrize("threads", [1, 2])
def test_kernels_leave_torch_thread_count_alone(threads, monkeypatch):
    """numba's threads are torch's OpenMP team here: a call must not change torch's thread count."""
    monkeypatch.setattr(cpu._parallel, "_MIN_WORK", 1)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        x = torch.rand(2, 1, 16, 16, requires_grad=True)
        cpu.sample_affine(x, random_affine(2, dtype=torch.float32), (16, 16)).sum().backward()
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)


def test_first_call_in_a_fresh_process_keeps_torch_threads():
    """The first kernel call starts numba's threads, which resets the shared OpenMP thread count:
    torch's own setting must survive it (a fresh process: the test session has started them)."""
    import subprocess
    import sys

    code = ("import torch, camwarp.warp.cpu as cpu\n"
            "torch.set_num_threads(1)\n"
            "x = torch.rand(64, 1, 28, 28, requires_grad=True)\n"
            "cpu.sample_affine(x, torch.eye(3).repeat(64, 1, 1), (28, 28)).sum().backward()\n"
            "print(torch.get_num_threads())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "1"
