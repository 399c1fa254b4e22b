"""Public warps against OpenCV, torch and geometric properties; validation; batching and dtypes."""

from __future__ import annotations

import inspect

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import camwarp
from camwarp.errors import SingularMatrixError
from camwarp.geometry import affine_matrix, lift_matrix, matrix_to_theta, resize_matrix, transform_points
from camwarp.warp import crop_resize, warp_affine, warp_affine3d, warp_perspective
from checks import check_op

CV_FLAGS = {"bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST, "bicubic": cv2.INTER_CUBIC}
CV_BORDERS = {"zeros": cv2.BORDER_CONSTANT, "border": cv2.BORDER_REPLICATE, "reflection": cv2.BORDER_REFLECT}


def random_affine(g: torch.Generator, W: int, H: int) -> torch.Tensor:
    r = torch.rand(6, generator=g, dtype=torch.float64)
    return affine_matrix(angle=float(360 * r[0]), translate=(float(6 * r[1] - 3), float(6 * r[2] - 3)),
                         scale=float(0.7 + 0.6 * r[3]), shear=(float(30 * r[4] - 15), float(10 * r[5] - 5)),
                         center=((W - 1) / 2, (H - 1) / 2), dtype=torch.float64)


def no_ties(A: torch.Tensor, size) -> np.ndarray:
    """Output pixels whose source coordinates are not within 1e-3 of a half pixel (nearest's ties)."""
    v, u = np.mgrid[: size[1], : size[0]].astype(np.float64)
    src = np.einsum("ij,jhw->ihw", np.linalg.inv(A.numpy()), np.stack([u, v, np.ones_like(u)]))
    frac = np.abs(np.mod(src[:2] / src[2:], 1.0) - 0.5)
    return (frac > 1e-3).all(0)


@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("sizes", [((13, 7), (11, 9)), ((40, 31), (37, 45))])
def test_warp_affine_matches_opencv(mode, padding_mode, sizes):
    # OpenCV 4.x/5.x warps float32 images with float coordinates (float64 images go through a
    # 1/32-pixel fixed-point table, off by up to 0.02 here): compare in float32, everywhere,
    # borders included. BORDER_REFLECT (fedcba|abcdef) is torch's reflection, not REFLECT_101.
    (W, H), size = sizes
    g = torch.Generator().manual_seed(W + len(mode) + len(padding_mode))
    img = torch.rand(3, H, W, generator=g)
    for _ in range(3):
        A = random_affine(g, W, H)
        out = warp_affine(img, A, size, mode=mode, padding_mode=padding_mode)
        ref = np.stack([cv2.warpAffine(c, A[:2].numpy(), size, flags=CV_FLAGS[mode], borderMode=CV_BORDERS[padding_mode])
                        for c in img.numpy()])
        keep = no_ties(A, size) if mode == "nearest" else np.ones(ref.shape[1:], bool)
        np.testing.assert_allclose(out.numpy()[:, keep], ref[:, keep], atol=2e-5, rtol=0)


def test_reflection_is_not_reflect101():
    img = torch.rand(1, 9, 9)
    A = affine_matrix(translate=(4.0, 0.0), dtype=torch.float64)  # output column 0..3 read source -4..-1
    out = warp_affine(img, A, (9, 9), padding_mode="reflection")
    r101 = cv2.warpAffine(img[0].numpy(), A[:2].numpy(), (9, 9), borderMode=cv2.BORDER_REFLECT_101)
    r = cv2.warpAffine(img[0].numpy(), A[:2].numpy(), (9, 9), borderMode=cv2.BORDER_REFLECT)
    np.testing.assert_allclose(out[0].numpy(), r, atol=1e-6)
    assert np.abs(out[0].numpy()[:, :4] - r101[:, :4]).max() > 0.1


@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
def test_warp_perspective_matches_opencv(mode):
    g = torch.Generator().manual_seed(3)
    W, H, size = 29, 23, (31, 19)
    img = torch.rand(2, H, W, generator=g)
    src = torch.tensor([[0.0, 0.0], [28.0, 0.0], [28.0, 22.0], [0.0, 22.0]], dtype=torch.float64)
    for _ in range(3):
        dst = src * torch.tensor([30 / 28, 18 / 22], dtype=torch.float64) + 3 * torch.rand(4, 2, generator=g,
                                                                                        dtype=torch.float64)
        Hm = torch.from_numpy(cv2.getPerspectiveTransform(src.numpy().astype(np.float32), dst.numpy().astype(np.float32)))
        out = warp_perspective(img, Hm, size, mode=mode)
        ref = np.stack([cv2.warpPerspective(c, Hm.numpy(), size, flags=CV_FLAGS[mode]) for c in img.numpy()])
        keep = no_ties(Hm, size) if mode == "nearest" else np.ones(ref.shape[1:], bool)
        np.testing.assert_allclose(out.numpy()[:, keep], ref[:, keep], atol=3e-5, rtol=0)


def test_warp_affine3d_matches_grid_sample():
    vol = torch.rand(2, 3, 5, 6, 7, dtype=torch.float64)
    A = torch.eye(4, dtype=torch.float64) + 0.2 * torch.randn(4, 4, dtype=torch.float64)
    A[3] = torch.tensor([0, 0, 0, 1.0])
    out = warp_affine3d(vol, A, (6, 4, 5))
    grid = F.affine_grid(matrix_to_theta(A, (7, 6, 5), (6, 4, 5)).expand(2, 3, 4), [2, 3, 5, 4, 6], align_corners=False)
    torch.testing.assert_close(out, F.grid_sample(vol, grid, align_corners=False), atol=1e-10, rtol=0)
    torch.testing.assert_close(warp_affine3d(vol, A[:3], (6, 4, 5), mode="trilinear"), out)


def test_blob_centroids_follow_transform_points():
    W, H = 96, 80
    pts = torch.tensor([[30.3, 24.7], [64.1, 50.2], [35.0, 55.3]], dtype=torch.float64)
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    img = sum(torch.exp(-((u - p[0]) ** 2 + (v - p[1]) ** 2) / (2 * 1.5**2)) for p in pts)[None]
    g = torch.Generator().manual_seed(1)
    for mode in ("bilinear", "bicubic"):
        for _ in range(4):
            A = random_affine(g, W, H)
            out = warp_affine(img, A, (W, H), mode=mode)[0]
            for q in transform_points(A, pts):
                m = (((u - q[0]) ** 2 + (v - q[1]) ** 2) < 10**2).double() * out
                centroid = torch.stack([(m * u).sum(), (m * v).sum()]) / m.sum()
                assert (centroid - q).norm() <= 0.05, (mode, centroid, q)


@pytest.mark.parametrize("in_wh, out_wh", [((53, 37), (17, 11)), ((53, 37), (80, 60)), ((7, 13), (7, 13)),
                                           ((1, 1), (3, 2)), ((30, 20), (10, 10))])
def test_crop_resize_matches_cv2_and_interpolate(in_wh, out_wh):
    (W, H), (Wo, Ho) = in_wh, out_wh
    img = torch.rand(3, H, W, dtype=torch.float64)
    box = (0, 0, W, H)
    lin = crop_resize(img.float(), box, out_wh, antialias=False)
    ref = np.stack([cv2.resize(c, out_wh, interpolation=cv2.INTER_LINEAR) for c in img.float().numpy()])
    np.testing.assert_allclose(lin.numpy(), ref, atol=2e-5)  # cv2's float32 resize: float weights
    for mode in ("bilinear", "bicubic"):
        out = crop_resize(img, box, out_wh, mode=mode, antialias=True)
        want = F.interpolate(img[None], size=(Ho, Wo), mode=mode, antialias=True, align_corners=False)[0]
        torch.testing.assert_close(out, want, atol=1e-12, rtol=0)
    plain = F.interpolate(img[None], size=(Ho, Wo), mode="bicubic", align_corners=False)[0]
    torch.testing.assert_close(crop_resize(img, box, out_wh, mode="bicubic", antialias=False), plain,
                               atol=1e-10, rtol=0)
    if (Wo <= W) == (Ho <= H):  # cv2's INTER_AREA: pure area only when both axes shrink (or both grow)
        area = crop_resize(img, box, out_wh, mode="area")
        ref = np.stack([cv2.resize(c, out_wh, interpolation=cv2.INTER_AREA) for c in img.numpy()])
        np.testing.assert_allclose(area.numpy(), ref, atol=1e-6)


def test_crop_resize_integer_box_is_slice_then_resize():
    img = torch.rand(2, 30, 41, dtype=torch.float64)
    x0, y0, w, h = 7, 4, 25, 18
    for mode, aa in (("bilinear", True), ("bicubic", True), ("bilinear", False), ("area", True)):
        out = crop_resize(img, (x0, y0, w, h), (9, 7), mode=mode, antialias=aa)
        m = "area" if mode == "area" else mode
        ref = F.interpolate(img[None, :, y0:y0 + h, x0:x0 + w], size=(7, 9), mode=m, antialias=aa and m != "area",
                            **({} if m == "area" else {"align_corners": False}))[0]
        if mode == "area":  # 25/9 and 18/7 are not integers: compare with cv2's exact overlap instead
            ref = torch.from_numpy(np.stack([cv2.resize(c, (9, 7), interpolation=cv2.INTER_AREA)
                                             for c in img[:, y0:y0 + h, x0:x0 + w].numpy()]))
        # Crop-then-resize renormalizes at the crop's edge; crop_resize reads the real neighbours
        # there: equal wherever the filter (1 output px for triangle, 2 for cubic) stays in the box.
        k = {"area": 0, "bilinear": int(aa), "bicubic": 2}[mode]
        tol = 1e-6 if mode == "area" else 1e-10  # cv2's INTER_AREA sums in float32
        torch.testing.assert_close(out[:, k:7 - k, k:9 - k], ref[:, k:7 - k, k:9 - k], atol=tol, rtol=0)
    nearest = crop_resize(img, (x0, y0, w, h), (w, h), mode="nearest")
    torch.testing.assert_close(nearest, img[:, y0:y0 + h, x0:x0 + w])


@pytest.mark.parametrize("mode, box, out_wh, fast", [
    ("bilinear", (0, 0, 41, 30), (20, 15), True), ("bicubic", (0, 0, 41, 30), (20, 15), True),
    ("bilinear", (7, 4, 25, 18), (9, 7), True), ("bicubic", (7, 4, 25, 18), (9, 7), False),
    ("bilinear", (3, 2, 10, 9), (23, 19), False), ("bilinear", (0, 0, 10, 30), (23, 19), False),
    ("bilinear", (0, 0, 41, 30), (80, 70), True), ("bicubic", (0, 0, 41, 30), (80, 70), True),
    ("bilinear", (0, 5, 41, 25), (80, 20), True), ("bilinear", (-1, 0, 20, 20), (10, 10), False)])
def test_crop_resize_interpolate_path_equals_the_samplers(mode, box, out_wh, fast, monkeypatch):
    """Whole-pixel boxes whose taps stay inside them (or whose sides lie on the image's edges) go to
    ``F.interpolate`` of the crop (CPU, several threads): the same values and image gradient as the
    numba and reference samplers. Others (taps reading real neighbours outside the box) do not."""
    from camwarp.warp import api

    img = torch.rand(2, 3, 30, 41, dtype=torch.float64)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert (api._integer_crop(box, img, out_wh, mode, None) is not None) == fast
        assert api._integer_crop(box, img, out_wh, mode, "cpu") is None  # a forced backend is honoured
        results, calls = [], []
        interpolate = F.interpolate
        monkeypatch.setattr(F, "interpolate", lambda *a, **k: calls.append(1) or interpolate(*a, **k))
        for backend in (None, "cpu", "reference"):
            x = img.clone().requires_grad_()
            out = crop_resize(x, box, out_wh, mode=mode, antialias=False, backend=backend)
            results.append((out, *torch.autograd.grad(out, x, torch.ones_like(out))))
        assert len(calls) == int(fast)  # the automatic call only
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_crop_resize_outside_and_tensor_boxes():
    img = torch.rand(1, 2, 10, 12, dtype=torch.float64)
    out = crop_resize(img, (-6, 0, 12, 10), (12, 10), mode="bilinear")
    assert (out[..., :5] == 0).all() and torch.allclose(out[..., 6:], img[..., :6])
    boxes = torch.tensor([[0.0, 0.0, 12.0, 10.0], [2.5, 1.5, 6.0, 4.0], [0.0, 0.0, 24.0, 20.0]], dtype=torch.float64)
    outs = crop_resize(img, boxes, (6, 5))
    assert outs.shape == (3, 2, 5, 6)
    for i in range(3):
        torch.testing.assert_close(outs[i], crop_resize(img[0], tuple(boxes[i].tolist()), (6, 5)))
    # A box is a matrix: antialias=False is warp_affine of crop-then-resize (border inside the image).
    A = resize_matrix((6, 4), (6, 5), dtype=torch.float64) @ affine_matrix(translate=(-2.5, -1.5), dtype=torch.float64)
    torch.testing.assert_close(crop_resize(img, boxes[1], (6, 5), antialias=False),
                               warp_affine(img, A, (6, 5), padding_mode="border"))


def _check_op_case(case: str) -> None:
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(3, 1, 4, 5, generator=g, dtype=torch.float64)
    A = torch.stack([random_affine(g, 5, 4) for _ in range(3)])[:, :2]  # (B, 2, 3): gradcheck perturbs affine entries
    if case.startswith("affine-"):
        mode = case.split("-")[1]
        check_op(lambda x, m: warp_affine(x, m, (3, 4), mode=mode, padding_mode="border"), imgs, A)
    elif case == "antialias":
        check_op(lambda x, m: warp_affine(x, m, (3, 2), antialias=True, padding_mode="reflection"), imgs, A)
    elif case == "perspective":
        Hm = lift_matrix(A).clone()
        Hm[:, 2, :2] = 0.01 * torch.randn(3, 2, generator=g, dtype=torch.float64)
        check_op(lambda x, m: warp_perspective(x, m, (3, 4)), imgs, Hm)
    elif case == "affine3d":
        vols = torch.rand(3, 1, 3, 4, 3, generator=g, dtype=torch.float64)
        A3 = torch.eye(4, dtype=torch.float64)[:3] + 0.1 * torch.randn(3, 3, 4, generator=g, dtype=torch.float64)
        check_op(lambda x, m: warp_affine3d(x, m, (2, 3, 2)), vols, A3)
    else:  # crop_resize; boxes chosen so that no filter tap sits on a kink of the triangle
        boxes = torch.tensor([[0.3, 0.2, 4.1, 3.3], [1.1, 0.4, 3.7, 3.3], [0.2, 1.3, 4.3, 2.6]], dtype=torch.float64)
        check_op(lambda x, b: crop_resize(x, b, (3, 2), antialias=case == "crop_resize-aa"), imgs, boxes)


@pytest.mark.parametrize("case", ["affine-bilinear", "affine-bicubic", "antialias", "perspective", "affine3d",
                                  "crop_resize-aa", "crop_resize"])
def test_check_op_public_warps(case):
    _check_op_case(case)


def test_batch_broadcast_layouts_and_odd_sizes():
    img = torch.rand(2, 1, 3, 7, 13)  # (2, 1, C, H, W)
    A = torch.stack([affine_matrix(angle=a, center=(6.0, 3.0)) for a in (0.0, 30.0, 90.0)])  # (3, 3, 3)
    out = warp_affine(img, A, (11, 9))
    assert out.shape == (2, 3, 3, 9, 11)
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(out[i, j], warp_affine(img[i, 0], A[j], (11, 9)))
    cl = img[:, 0].contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(warp_affine(cl, A[1], (11, 9)), out[:, 1])
    nc = torch.rand(3, 13, 7).transpose(-1, -2)  # non-contiguous (3, 7, 13)
    torch.testing.assert_close(warp_affine(nc, A[2], (5, 4)), warp_affine(nc.contiguous(), A[2], (5, 4)))
    one = torch.rand(2, 1, 1)
    torch.testing.assert_close(warp_affine(one, torch.eye(3), (1, 1)), one)
    torch.testing.assert_close(warp_affine(one, resize_matrix((1, 1), (3, 2)), (3, 2), padding_mode="border"),
                               one.expand(2, 2, 3))
    assert warp_affine(torch.rand(0, 3, 4, 5), torch.eye(3), (6, 2)).shape == (0, 3, 2, 6)
    assert warp_affine(torch.rand(3, 4, 5), torch.eye(3).expand(0, 3, 3), (6, 2)).shape == (0, 3, 2, 6)
    assert crop_resize(torch.rand(0, 3, 4, 5), (0, 0, 2, 2), (6, 2)).shape == (0, 3, 2, 6)
    assert warp_affine3d(torch.rand(0, 1, 2, 3, 4), torch.eye(4), (2, 2, 2)).shape == (0, 1, 2, 2, 2)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16])
def test_integer_images_round_and_clamp(dtype):
    img = torch.randint(0, 200, (3, 9, 11), dtype=dtype)
    A = affine_matrix(angle=20.0, scale=1.2, center=(5.0, 4.0))
    out = warp_affine(img, A, (11, 9), mode="bicubic")
    ref = warp_affine(img.float(), A, (11, 9), mode="bicubic").round().clamp(0 if dtype == torch.uint8 else -32768, 255 if dtype == torch.uint8 else 32767)
    assert out.dtype == dtype
    torch.testing.assert_close(out, ref.to(dtype))
    ref8 = cv2.warpAffine(img[0].numpy().astype(np.uint8), A[:2].double().numpy(), (11, 9), flags=cv2.INTER_LINEAR)
    assert np.abs(warp_affine(img[0:1], A, (11, 9))[0].numpy().astype(int) - ref8.astype(int)).max() <= 1
    assert crop_resize(img, (0, 0, 11, 9), (5, 4)).dtype == dtype


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_keeps_dtype(dtype):
    img = torch.rand(2, 3, 16, 20)
    A = affine_matrix(angle=10.0, center=(10.0, 8.0))
    out = warp_affine(img.to(dtype), A, (12, 10), antialias=True)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), warp_affine(img, A, (12, 10), antialias=True), atol=2e-2, rtol=2e-2)
    assert crop_resize(img.to(dtype), (1, 1, 10, 10), (5, 5)).dtype == dtype


def test_validation_names_function_and_argument():
    img, A = torch.rand(3, 5, 5), torch.eye(3)
    cases = [
        (lambda: warp_affine(torch.rand(5, 5), A, (5, 5)), ValueError, "warp_affine: image must have shape"),
        (lambda: warp_affine(img.numpy(), A, (5, 5)), TypeError, "warp_affine: image must be a torch.Tensor"),
        (lambda: warp_affine(img > 0, A, (5, 5)), TypeError, "warp_affine: image must be a real"),
        (lambda: warp_affine(img, A, (5,)), ValueError, "warp_affine: size must have the form"),
        (lambda: warp_affine(img, A, (5.5, 5)), TypeError, "warp_affine: size must contain ints"),
        (lambda: warp_affine(img, A, (0, 5)), ValueError, "warp_affine: size must be positive"),
        (lambda: warp_affine(img, torch.eye(4), (5, 5)), ValueError, r"warp_affine: A must have shape \(\.\.\., 3, 3\)"),
        (lambda: warp_affine(img, A.expand(2, 3, 3), (5, 5)) if False else
         warp_affine(img.expand(3, 3, 5, 5), A.expand(2, 3, 3), (5, 5)), ValueError, "warp_affine: batch dimensions"),
        (lambda: warp_affine(img, A, (5, 5), mode="linear"), ValueError, "warp_affine: mode must be one of"),
        (lambda: warp_affine(img, A, (5, 5), padding_mode="wrap"), ValueError, "warp_affine: padding_mode must be"),
        (lambda: warp_affine(img, A, (5, 5), antialias=1), TypeError, "warp_affine: antialias must be a bool"),
        (lambda: warp_affine(img, torch.tensor([[1.0, 0, 0], [0, 1, 0], [0.1, 0, 1]]), (5, 5)), ValueError,
         "warp_affine: A must be affine"),
        (lambda: warp_affine(img, torch.diag(torch.tensor([1.0, 0, 1])), (5, 5)), SingularMatrixError,
         "warp_affine: A is singular"),
        (lambda: warp_affine(img, A, (5, 5), backend="cuda-magic"), ValueError, "backend must be"),
        (lambda: warp_perspective(img, A[:2], (5, 5)), ValueError, r"warp_perspective: H must have shape"),
        (lambda: warp_affine3d(torch.rand(2, 3, 4), torch.eye(4), (2, 2, 2)), ValueError, "warp_affine3d: volume"),
        (lambda: warp_affine3d(torch.rand(1, 2, 3, 4), torch.eye(4), (2, 2, 2), mode="bicubic"), ValueError,
         "warp_affine3d: mode"),
        (lambda: warp_affine3d(torch.rand(1, 2, 3, 4), torch.eye(4), (2, 2)), ValueError, "warp_affine3d: size"),
        (lambda: crop_resize(img, (0, 0, 0, 3), (2, 2)), ValueError, "crop_resize: box"),
        (lambda: crop_resize(img, (0, 0, 3), (2, 2)), TypeError, "crop_resize: box must be"),
        (lambda: crop_resize(img, torch.tensor([0.0, 0, -1, 2]), (2, 2)), ValueError, "crop_resize: box sizes"),
        (lambda: crop_resize(img, torch.zeros(3), (2, 2)), ValueError, r"crop_resize: box must have shape"),
        (lambda: crop_resize(img, (0, 0, 2, 2), (2, 2), mode="lanczos"), ValueError, "crop_resize: mode"),
        (lambda: crop_resize(torch.rand(2, 0, 3), (0, 0, 2, 2), (2, 2)), ValueError, "crop_resize: image"),
    ]
    for call, err, msg in cases:
        with pytest.raises(err, match=msg):
            call()


def test_public_names_and_signatures():
    for name in ("warp_affine", "warp_perspective", "warp_affine3d", "crop_resize"):
        assert getattr(camwarp, name) is getattr(camwarp.warp, name)
    shared = {"size", "mode", "padding_mode", "antialias", "backend"}
    defaults = {}
    for fn in (warp_affine, warp_perspective, warp_affine3d, crop_resize):
        for name, p in inspect.signature(fn).parameters.items():
            if name in shared:
                defaults.setdefault((name, fn is crop_resize and name == "antialias"), p.default)
                assert p.default == defaults[(name, fn is crop_resize and name == "antialias")], (fn.__name__, name)
    assert inspect.signature(crop_resize).parameters["antialias"].default is True
    assert inspect.signature(warp_affine).parameters["antialias"].default is False
