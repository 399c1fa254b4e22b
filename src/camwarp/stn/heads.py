"""Transform heads: the last layer of a localization network, one constrained family each.

A head maps localization features ``(N, F)`` to a transform ``theta`` in torch's ``affine_grid``
convention (output-normalized -> input-normalized, ``align_corners=False``; see
``docs/conventions.md``): ``(N, 2, 3)`` for the affine families, ``(N, 3, 3)`` for ``projective``
(acting on ``(x, y, 1)`` followed by the homogeneous divide), ``(N, 3, 4)`` for volumes, and the
control-point displacements ``(N, K*K, 2)`` for ``tps``.

Its linear layer starts with zero weights and a bias that is the identity's raw parameters, so an
untrained transformer returns its input exactly while every weight of the layer still receives
a gradient. Optional bounds are smooth (``tanh``/``exp``), never clipping:

==================== ============== =====================================================
family               raw params     theta
==================== ============== =====================================================
translation          ``t`` (d)      ``[I | T(t)]``
scale_translation    ``r, t``       ``[S(r) I | T(t)]`` (isotropic: the paper's attention)
similarity (2-D)     ``r, a, t``    ``[S(r) R(A(a)) | T(t)]``, ``R(a) = [[cos, -sin], [sin, cos]]``
affine               ``M`` (d x d+1) ``[M[:, :d] | T(M[:, d])]``
projective (2-D)     8 values       ``[[p0, p1, T(p2)], [p3, p4, T(p5)], [p6, p7, 1]]``
tps (2-D)            ``K*K*2``      displacements ``T(raw)``, ``(N, K*K, 2)``
==================== ============== =====================================================

with ``T(x) = max_translation * tanh(x / max_translation)`` (``x`` when unbounded; slope 1 at 0),
``S(r) = max_scale ** tanh(r / ln max_scale)`` (``exp(r)`` when unbounded; within
``(1/max_scale, max_scale)``) and ``A(a) = max_angle * tanh(a / max_angle)`` (radians inside,
``max_angle`` given in degrees like every camwarp angle). Scales and angles act in normalized
coordinates: for a non-square image a normalized rotation is a pixel rotation composed with the
aspect ratio (``theta_to_pixel_matrix`` gives the exact pixel map).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .. import _checks

__all__ = ["FAMILIES", "FAMILIES_3D", "TransformHead", "num_params", "identity_params", "params_to_theta"]

FAMILIES = ("translation", "scale_translation", "similarity", "affine", "projective", "tps")
FAMILIES_3D = ("translation", "scale_translation", "affine")

# Which bound each family understands (anything else is refused by name).
_BOUNDS = {
    "translation": ("max_translation",),
    "scale_translation": ("max_scale", "max_translation"),
    "similarity": ("max_scale", "max_angle", "max_translation"),
    "affine": ("max_translation",),
    "projective": ("max_translation",),
    "tps": ("max_translation",),
}


def _check_family(transform: object, dims: object, fn: str, tps_grid: object = 4) -> tuple[str, int, int]:
    """Validate ``(transform, dims, tps_grid)``; return them as ``(str, int, int)``."""
    if dims not in (2, 3) or isinstance(dims, bool):
        raise ValueError(f"{fn}: dims must be 2 or 3, got {dims!r}")
    if not isinstance(transform, str):
        raise TypeError(f"{fn}: transform must be a str, got {type(transform).__name__}")
    _checks.check_choice(transform, fn, "transform", FAMILIES if dims == 2 else FAMILIES_3D)
    tps_grid = _checks.check_int(tps_grid, fn, "tps_grid", minimum=2)  # K of a K x K grid of control points
    return transform, int(dims), tps_grid


def _check_bounds(transform: str, fn: str, **bounds: object) -> dict[str, float]:
    """Validate the bounds given for ``transform``; return the ones that are set, as floats."""
    out = {}
    for name, value in bounds.items():
        if value is None:
            continue
        if name not in _BOUNDS[transform]:
            users = ", ".join(f for f, b in _BOUNDS.items() if name in b)
            raise ValueError(f"{fn}: {name} is not supported by transform {transform!r} (supported by: {users})")
        v = _checks.check_finite_number(value, fn, name, positive=True)
        if name == "max_scale" and v <= 1:
            raise ValueError(f"{fn}: max_scale must be > 1 (scales lie in (1/max_scale, max_scale)), got {value!r}")
        if name == "max_angle" and v > 180:
            raise ValueError(f"{fn}: max_angle must be in (0, 180] degrees, got {value!r}")
        out[name] = v
    return out


def num_params(transform: str, dims: int = 2, tps_grid: int = 4) -> int:
    """Return the number of raw parameters a head of ``transform`` regresses.

    Example:
        >>> num_params("affine"), num_params("similarity"), num_params("tps", tps_grid=3)
        (6, 4, 18)
    """
    transform, dims, tps_grid = _check_family(transform, dims, "num_params", tps_grid)
    return {"translation": dims, "scale_translation": 1 + dims, "similarity": 4,
            "affine": dims * (dims + 1), "projective": 8, "tps": 2 * tps_grid * tps_grid}[transform]


def identity_params(transform: str, dims: int = 2, tps_grid: int = 4, *, dtype: torch.dtype | None = None,
                    device: torch.device | str | None = None) -> Tensor:
    """Return the raw parameters ``(P,)`` whose theta is the identity (the head's initial bias).

    Example:
        >>> identity_params("affine")
        tensor([1., 0., 0., 0., 1., 0.])
    """
    n = num_params(transform, dims, tps_grid)
    p = torch.zeros(n, dtype=dtype or torch.get_default_dtype(), device=device)
    if transform == "affine":
        p.view(dims, dims + 1).diagonal().fill_(1)
    elif transform == "projective":
        p[0] = p[4] = 1
    return p


def _bounded(x: Tensor, bound: float | None) -> Tensor:
    return x if bound is None else bound * torch.tanh(x / bound)


def _scale(r: Tensor, max_scale: float | None) -> Tensor:
    if max_scale is None:
        return torch.exp(r)
    log_max = math.log(max_scale)
    return torch.exp(log_max * torch.tanh(r / log_max))


def params_to_theta(params: Tensor, transform: str, dims: int = 2, *, max_scale: float | None = None,
                    max_translation: float | None = None, max_angle: float | None = None) -> Tensor:
    """Return theta (normalized dst->src) of raw parameters ``params`` ``(..., P)`` of a family.

    The formulas are in this module's docstring; theta is differentiable in ``params``.

    Args:
        params: ``(..., P)`` raw parameters, ``P = num_params(transform, dims, K)``.
        transform: the family name, one of :data:`FAMILIES` (:data:`FAMILIES_3D` for ``dims=3``).
        dims: 2 (images) or 3 (volumes).
        max_scale: optional bound ``> 1`` on the scale (``scale_translation``, ``similarity``).
        max_translation: optional bound on translations/displacements, normalized units (2 = width).
        max_angle: optional bound on the angle in degrees (``similarity``).

    Returns:
        ``(..., 2, 3)``, ``(..., 3, 3)`` (projective), ``(..., 3, 4)`` (volumes) or ``(..., K*K, 2)`` (tps).

    Raises:
        ValueError: unknown family, wrong ``P``, or a bound the family does not support.

    Example:
        >>> params_to_theta(torch.tensor([0.0, 0.25, -0.5]), "scale_translation")
        tensor([[ 1.0000,  0.0000,  0.2500],
                [ 0.0000,  1.0000, -0.5000]])
    """
    fn = "params_to_theta"
    transform, dims, _ = _check_family(transform, dims, fn)
    b = _check_bounds(transform, fn, max_scale=max_scale, max_translation=max_translation, max_angle=max_angle)
    _checks.check_shape(params, fn, "params", "... P")
    _checks.check_float(params, fn, "params")
    P = params.shape[-1]
    if transform == "tps":
        K = math.isqrt(P // 2)
        if P % 2 or K * K * 2 != P or K < 2:
            raise ValueError(f"{fn}: params for 'tps' must have 2*K*K values (K >= 2), got {P}")
    elif P != num_params(transform, dims):
        raise ValueError(f"{fn}: params for {transform!r} (dims={dims}) must have {num_params(transform, dims)} "
                         f"values in the last dim, got shape {tuple(params.shape)}")
    t_max, batch = b.get("max_translation"), params.shape[:-1]
    eye = torch.eye(dims, dtype=params.dtype, device=params.device).expand(*batch, dims, dims)
    if transform == "translation":
        return torch.cat([eye, _bounded(params, t_max)[..., None]], dim=-1)
    if transform == "scale_translation":
        s = _scale(params[..., :1], b.get("max_scale"))[..., None]  # (..., 1, 1)
        return torch.cat([s * eye, _bounded(params[..., 1:], t_max)[..., None]], dim=-1)
    if transform == "similarity":
        s = _scale(params[..., 0], b.get("max_scale"))
        a_max = None if "max_angle" not in b else math.radians(b["max_angle"])
        a = _bounded(params[..., 1], a_max)
        c, n = s * torch.cos(a), s * torch.sin(a)
        t = _bounded(params[..., 2:], t_max)
        rows = [torch.stack([c, -n, t[..., 0]], -1), torch.stack([n, c, t[..., 1]], -1)]
        return torch.stack(rows, dim=-2)
    if transform == "affine":
        M = params.unflatten(-1, (dims, dims + 1))
        return torch.cat([M[..., :dims], _bounded(M[..., dims:], t_max)], dim=-1)
    if transform == "projective":
        p = params
        one = torch.ones_like(p[..., 0])
        rows = [torch.stack([p[..., 0], p[..., 1], _bounded(p[..., 2], t_max)], -1),
                torch.stack([p[..., 3], p[..., 4], _bounded(p[..., 5], t_max)], -1),
                torch.stack([p[..., 6], p[..., 7], one], -1)]
        return torch.stack(rows, dim=-2)
    return _bounded(params, t_max).unflatten(-1, (P // 2, 2))  # tps: (..., K*K, 2)


class TransformHead(nn.Module):
    """The final layer of a localization network: features ``(N, F)`` -> theta of one family.

    ``Linear(F, P)`` with zero weights and the identity's raw parameters as bias, then
    :func:`params_to_theta`. At initialization theta is exactly the identity (whatever the
    features), and the weights get the gradient ``dL/dparams (x) features``.

    Args:
        in_features: ``F``, the size of the localization features.
        transform: family name (see :data:`FAMILIES`), default ``"affine"``.
        dims: 2 (images) or 3 (volumes).
        max_scale, max_translation, max_angle: optional smooth bounds (see :func:`params_to_theta`).
        tps_grid: ``K`` for ``tps`` (``K x K`` control points), default 4.

    Example:
        >>> head = TransformHead(32, "similarity")
        >>> head(torch.randn(5, 32)).shape
        torch.Size([5, 2, 3])
    """

    def __init__(self, in_features: int, transform: str = "affine", dims: int = 2, *,
                 max_scale: float | None = None, max_translation: float | None = None,
                 max_angle: float | None = None, tps_grid: int = 4) -> None:
        super().__init__()
        fn = "TransformHead"
        in_features = _checks.check_int(in_features, fn, "in_features", minimum=1)
        self.transform, self.dims, self.tps_grid = _check_family(transform, dims, fn, tps_grid)
        self.bounds = _check_bounds(transform, fn, max_scale=max_scale, max_translation=max_translation,
                                   max_angle=max_angle)
        self.fc = nn.Linear(in_features, num_params(transform, dims, tps_grid))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Zero the weights and set the bias to the identity's raw parameters."""
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.bias.copy_(identity_params(self.transform, self.dims, self.tps_grid))

    def forward(self, features: Tensor) -> Tensor:
        """Return theta ``(N, ...)`` for features ``(N, F)``."""
        return params_to_theta(self.fc(features), self.transform, self.dims, **self.bounds)

    def extra_repr(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self.bounds.items())
        grid = f", tps_grid={self.tps_grid}" if self.transform == "tps" else ""
        return f"transform={self.transform!r}, dims={self.dims}{grid}{extra}"
