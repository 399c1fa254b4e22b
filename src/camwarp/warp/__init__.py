"""Warping images and volumes by pixel matrices (src->dst, OpenCV centre frame).

Public: :func:`warp_affine`, :func:`warp_perspective`, :func:`warp_affine3d`, :func:`crop_resize`
(also ``camwarp.warp_affine`` etc.). The output pixel ``p`` takes the source at ``A^-1 p`` (like
``cv2.warpAffine`` without ``WARP_INVERSE_MAP``). Internal samplers taking dst->src matrices on
flat batches live in :mod:`camwarp.warp.dispatch`, which picks a backend; the readable oracle is
:mod:`camwarp.warp.reference`. Conventions: ``docs/conventions.md``; details: ``docs/warp.md``.
"""

from __future__ import annotations

from . import antialias, dispatch, reference
from .api import crop_resize, warp_affine, warp_affine3d, warp_perspective
from .dispatch import available_backends

__all__ = ["antialias", "available_backends", "crop_resize", "dispatch", "reference", "warp_affine",
           "warp_affine3d", "warp_perspective"]
