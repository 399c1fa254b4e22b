"""The camera update: an image op's pixel matrix ``A`` turned into new intrinsics by RQ decomposition.

For a src->dst pixel matrix ``A`` (OpenCV centre frame) the old projection ``p = K d(x)`` moves to
``A p``. Decomposing ``A K = K' R`` (``K'`` upper triangular, positive diagonal, ``K'[2, 2] = 1``
after dividing out the projective scale; ``R`` orthogonal) gives a new camera ``K'`` that sees
``R X``. For an affine ``A``, ``R = diag(Q, 1)`` with ``Q`` a 2x2 rotation (``det A > 0``) or
reflection (``det A < 0``: a flip is a mirror, not a rotation of the camera; ``det R = -1``), and
the distortion stays exact with ``d' = Q d Q^T``: radial terms are unchanged and, since the
tangential term is ``t(x) = 2 (p.x) x + |x|^2 p`` with ``p = (p2, p1)``, the tangential vector
rotates, ``p' = Q p``. Any invertible affine map is therefore exact (shear and anisotropic scale
go into ``K'``'s skew and focal lengths). A projective ``A`` moves pixels along rays that the
distortion model cannot follow: it needs zero distortion (undistort the image first).
See ``docs/camera.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _checks
from ..errors import InexactDistortionError, SingularMatrixError
from ..geometry import crop_matrix, hflip_matrix, pad_matrix, resize_matrix, rot90_matrix, vflip_matrix

if TYPE_CHECKING:
    from .model import Camera

__all__ = ["CameraOps", "rq", "transform_intrinsics"]


def rq(M: Tensor) -> tuple[Tensor, Tensor]:
    """Decompose ``M = K R``: ``K`` upper triangular with a non-negative diagonal, ``R`` orthogonal.

    Computed from the QR decomposition of the flipped matrix: with ``P`` the exchange matrix,
    ``(P M)^T = Q1 R1`` gives ``M = (P R1^T P) (P Q1^T)``; the signs are then fixed so that
    ``diag(K) >= 0`` (so ``det R = sign(det M)``; ``K`` is not normalized). Unlike
    ``cv2.RQDecomp3x3``, which keeps ``det R = +1`` and lets ``K[2, 2]`` go negative, the whole
    diagonal of ``K`` is positive. Triangular input with a positive diagonal comes back exactly.

    Args:
        M: ``(..., 3, 3)`` float matrices (any square size works).

    Returns:
        ``(K, R)``, both ``(..., 3, 3)``, differentiable in ``M`` (for full-rank ``M``).

    Raises:
        TypeError, ValueError: ``M`` not a float tensor of shape ``(..., n, n)``.

    Example:
        >>> K, R = rq(torch.tensor([[-2.0, 0, 5], [0, 3, 1], [0, 0, 1]]))
        >>> K.diagonal().tolist(), R.diagonal().tolist()
        ([2.0, 3.0, 1.0], [-1.0, 1.0, 1.0])
    """
    _checks.check_shape(_checks.check_tensor(M, "rq", "M"), "rq", "M", "... n n")
    _checks.check_float(M, "rq", "M")
    if M.shape[-1] != M.shape[-2]:
        raise ValueError(f"rq: M must be square, got {tuple(M.shape)}")
    Q1, R1 = torch.linalg.qr(M.flip(-2).transpose(-1, -2))
    K = R1.transpose(-1, -2).flip(-2).flip(-1)
    R = Q1.transpose(-1, -2).flip(-2)
    s = torch.where(K.diagonal(dim1=-2, dim2=-1) < 0, -1.0, 1.0).to(K)  # (..., n)
    K, R = K * s[..., None, :], R * s[..., :, None]
    # Householder rounds an already triangular M by an ulp; return it bit-exact (crop, resize, pad).
    done = (M.tril(-1) == 0).all(-1).all(-1) & (M.diagonal(dim1=-2, dim2=-1) > 0).all(-1)
    eye = torch.eye(M.shape[-1], dtype=M.dtype, device=M.device)
    return torch.where(done[..., None, None], M, K), torch.where(done[..., None, None], eye, R)


def _rotate_tangential(dist: Tensor, Q: Tensor) -> Tensor:
    """OpenCV coefficients ``(..., n)`` with ``(p2, p1)`` replaced by ``Q (p2, p1)``; ``Q`` is ``(..., 2, 2)``."""
    n = dist.shape[-1]
    if n < 3:
        return dist.expand(*Q.shape[:-2], n) if Q.shape[:-2] != dist.shape[:-1] else dist
    if n == 3 and bool((Q[..., 0, 1] != 0).any()):  # p2 = 0 implied, but Q p gives a p2: keep it
        dist, n = F.pad(dist, (0, 1)), 4
    full = F.pad(dist, (0, max(0, 4 - n)))
    p = torch.stack([full[..., 3], full[..., 2]], dim=-1)  # (..., 2) = (p2, p1)
    p2, p1 = (Q @ p[..., None]).squeeze(-1).unbind(-1)
    batch = torch.broadcast_shapes(dist.shape[:-1], Q.shape[:-2])
    full = full.expand(*batch, full.shape[-1])
    return torch.cat([full[..., :2], p1[..., None], p2[..., None], full[..., 4:]], dim=-1)[..., :n]


def transform_intrinsics(K: Tensor, A: Tensor, dist: Tensor | None = None,
                         model: str = "opencv") -> tuple[Tensor, Tensor, Tensor]:
    """Return the intrinsics ``K'``, rotation ``R`` and distortion after the src->dst pixel map ``A``.

    ``A K = lambda K' R`` (:func:`rq`, ``K'[2, 2] = 1``): the new camera ``K'`` (with distortion
    ``dist'``) projects ``R X`` where ``A`` moves the old camera's projection of ``X``. Tangential
    coefficients rotate with ``Q = R[:2, :2]``; radial and fisheye ones are unchanged (exact only
    for an affine ``A`` or zero distortion; :meth:`Camera.transform` checks this).

    Args:
        K: intrinsics ``(..., 3, 3)`` (OpenCV centre frame).
        A: src->dst pixel matrix ``(..., 3, 3)``; batch dims broadcast with ``K``'s.
        dist: ``(..., n)`` coefficients or None (then an empty ``(..., 0)`` is returned).
        model: ``"opencv"`` or ``"fisheye"``.

    Returns:
        ``(K', R, dist')`` of shapes ``(..., 3, 3)``, ``(..., 3, 3)``, ``(..., n)``.

    Example:
        >>> K = torch.tensor([[100.0, 0, 49.5], [0, 100, 49.5], [0, 0, 1]])
        >>> transform_intrinsics(K, hflip_matrix(100))[1].diagonal().tolist()
        [-1.0, 1.0, 1.0]
    """
    fn = "transform_intrinsics"
    _checks.check_shape(_checks.check_tensor(K, fn, "K"), fn, "K", "... 3 3")
    _checks.check_shape(_checks.check_tensor(A, fn, "A"), fn, "A", "... 3 3")
    _checks.check_float(A, fn, "A")
    _checks.broadcast_batch(fn, K=K.shape[:-2], A=A.shape[:-2])
    dtype = torch.promote_types(K.dtype, A.dtype)
    Kp, R = rq(A.to(dtype) @ K.to(dtype))
    Kp = Kp / Kp[..., 2:, 2:]
    if dist is None:
        dist = torch.zeros(*Kp.shape[:-2], 0, dtype=dtype, device=Kp.device)
    dist = dist.to(dtype)
    if model == "opencv":
        dist = _rotate_tangential(dist, R[..., :2, :2])
    else:
        dist = dist.expand(*torch.broadcast_shapes(dist.shape[:-1], Kp.shape[:-2]), dist.shape[-1])
    return Kp, R, dist


class CameraOps:
    """Image ops of :class:`camwarp.Camera`; each is ``self.transform(<geometry builder>(...), new_size)``."""

    __slots__ = ()

    def transform(self: Camera, A: Tensor, size: Sequence[int] | None = None) -> tuple[Camera, Tensor]:
        """Return the camera of the image warped by the src->dst pixel matrix ``A``, and ``R``.

        ``A K = lambda K' R`` (RQ, :func:`transform_intrinsics`): the new camera (intrinsics ``K'``,
        size ``size``) projects ``R X`` to ``A`` times the old projection of ``X``. ``R = I`` for
        crops, resizes and pads; a rotation about the optical axis for rotations; a reflection
        (``det R = -1``) for flips. Fold ``R`` into the extrinsics: ``R_new = R @ R_world_to_cam``.

        Args:
            A: ``(..., 3, 3)`` src->dst pixel matrix, OpenCV centre frame (a ``(..., 2, 3)`` is lifted);
                batch dims broadcast with the camera's.
            size: the new image size ``(W, H)``; default: unchanged.

        Returns:
            ``(camera, R)`` with ``R`` ``(..., 3, 3)``.

        Raises:
            InexactDistortionError: ``A`` is projective and the camera has non-zero distortion.
            SingularMatrixError: ``A`` is singular (the new focal length is zero or not finite).

        Example:
            >>> from camwarp import Camera
            >>> cam = Camera(100.0, 100.0, 49.5, 39.5, 100, 80)
            >>> cam.transform(rot90_matrix(1, cam.size), (80, 100))[0].principal_point().tolist()
            [39.5, 49.5]
        """
        fn = "Camera.transform"
        A = _checks.check_float(_checks.check_tensor(A, fn, "A"), fn, "A")
        _checks.check_shape(A, fn, "A", "... 2|3 3")
        if A.shape[-2] == 2:
            A = torch.cat([A, torch.tensor([0.0, 0.0, 1.0], dtype=A.dtype, device=A.device)
                           .expand(*A.shape[:-2], 1, 3)], dim=-2)
        size = self.size if size is None else _checks.check_size(size, fn)
        if A.device != self.device:
            raise ValueError(f"{fn}: A is on {A.device} but the camera is on {self.device}")
        if self.has_distortion:
            w = A[..., 2, :].abs()
            tol = 8 * torch.finfo(A.dtype).eps
            if bool((w[..., 0] * size[0] + w[..., 1] * size[1] > tol * w[..., 2]).any()):
                raise InexactDistortionError(
                    f"{fn}: A is projective and the camera has non-zero distortion; no camera with the "
                    f"{self.model!r} model sees the warped image exactly: undistort first, then warp")
        Kp, R, dist = transform_intrinsics(self.K, A, self.dist, self.model)
        f = torch.stack([Kp[..., 0, 0], Kp[..., 1, 1]])
        if not bool((torch.isfinite(Kp).all()) and (f > 0).all()):
            raise SingularMatrixError(f"{fn}: A is singular (the new focal length would be zero or not "
                                      f"finite); a pixel matrix must map the image onto an area")
        cam = type(self)._new(Kp[..., 0, 0], Kp[..., 1, 1], Kp[..., 0, 2], Kp[..., 1, 2], Kp[..., 0, 1], dist,
                              size[0], size[1], self.model)
        return cam, R

    def _op(self: Camera, A: Tensor, size: Sequence[int]) -> Camera:
        return self.transform(A, size)[0]

    def crop(self: Camera, x0: float | Tensor, y0: float | Tensor, w: int, h: int) -> Camera:
        """Return the camera of the ``w x h`` crop whose top-left pixel is source pixel ``(x0, y0)``.

        ``c' = c - (x0, y0)``; any real (or batched tensor) offsets, distortion unchanged.

        Example:
            >>> from camwarp import Camera
            >>> Camera(100.0, 100.0, 50.0, 40.0, 100, 80).crop(10, 5, 60, 50).principal_point().tolist()
            [40.0, 35.0]
        """
        size = _checks.check_size((w, h), "Camera.crop", "(w, h)")
        return self._op(crop_matrix(x0, y0, dtype=self.dtype, device=self.device), size)

    def center_crop(self: Camera, w: int, h: int) -> Camera:
        """Return the camera of the centred ``w x h`` crop, offsets ``((W - w) // 2, (H - h) // 2)``.

        Integer offsets (floor, as albumentations' ``CenterCrop``) keep pixels on the grid; a crop
        larger than the image pads (negative offsets).
        """
        w, h = _checks.check_size((w, h), "Camera.center_crop", "(w, h)")
        return self.crop((self.width - w) // 2, (self.height - h) // 2, w, h)

    def resize(self: Camera, w: int, h: int) -> Camera:
        """Return the camera of the image resized to ``w x h`` edges to edges (as ``cv2.resize``).

        ``f' = s f``, ``c' = s (c + 0.5) - 0.5`` with ``s = w / W`` (``h / H`` for ``y``), OpenCV frame;
        in the corner frame simply ``c' = s c``. Distortion unchanged.
        """
        size = _checks.check_size((w, h), "Camera.resize", "(w, h)")
        return self._op(resize_matrix(self.size, size, dtype=self.dtype, device=self.device), size)

    def pad(self: Camera, left: int, top: int, right: int = 0, bottom: int = 0) -> Camera:
        """Return the camera of the image padded by whole pixels (negative values crop): ``c' = c + (left, top)``."""
        left, top, right, bottom = (_checks.check_int(v, "Camera.pad", name) for name, v in
                                    (("left", left), ("top", top), ("right", right), ("bottom", bottom)))
        size = _checks.check_size((self.width + left + right, self.height + top + bottom), "Camera.pad",
                                  "padded size")
        return self._op(pad_matrix(left, top, dtype=self.dtype, device=self.device), size)

    def hflip(self: Camera) -> Camera:
        """Return the camera of the horizontally flipped image (``R = diag(-1, 1, 1)``, p2 changes sign)."""
        return self._op(hflip_matrix(self.width, dtype=self.dtype, device=self.device), self.size)

    def vflip(self: Camera) -> Camera:
        """Return the camera of the vertically flipped image (``R = diag(1, -1, 1)``, p1 changes sign)."""
        return self._op(vflip_matrix(self.height, dtype=self.dtype, device=self.device), self.size)

    def rot90(self: Camera, k: int = 1) -> Camera:
        """Return the camera of the image turned ``k`` quarter turns counter-clockwise (as ``torch.rot90``)."""
        k = _checks.check_int(k, "Camera.rot90", "k")
        A = rot90_matrix(k, self.size, dtype=self.dtype, device=self.device)
        return self._op(A, self.size if k % 2 == 0 else self.size[::-1])
