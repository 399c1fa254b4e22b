"""Spatial transformer networks on camwarp's geometry: theta is a pixel matrix and a camera update.

A :class:`SpatialTransformer` regresses ``theta`` (torch's ``affine_grid`` convention, output-
normalized -> input-normalized, ``align_corners=False``) with a localization network and a
constrained head (translation, scale_translation, similarity, affine, projective, tps; identity at
initialization), then samples its input once through :mod:`camwarp.warp`. ``theta_to_pixel_matrix``
and ``stn_camera`` turn ``theta`` into the exact src->dst pixel matrix and the output's camera.
Chains compose thetas and sample once; parallel transformers concatenate. ``build_model`` builds
the paper's CNN/FCN/ST-CNN/ST-FCN classifiers by name. Details: ``docs/stn.md``.
"""

from __future__ import annotations

from .compose import SpatialTransformerChain, SpatialTransformerParallel
from .heads import FAMILIES, FAMILIES_3D, TransformHead, identity_params, num_params, params_to_theta
from .localization import ConvLocalization, FCLocalization
from .models import CNN, FCN, MODELS, STClassifier, build_model
from .tps import tps_control_points, tps_grid, tps_transform_points, tps_warp
from .transformer import SpatialTransformer, full_theta, sample_theta, stn_camera, theta_to_pixel_matrix

__all__ = [
    "CNN", "ConvLocalization", "FAMILIES", "FAMILIES_3D", "FCLocalization", "FCN", "MODELS", "STClassifier",
    "SpatialTransformer", "SpatialTransformerChain", "SpatialTransformerParallel", "TransformHead",
    "build_model", "full_theta", "identity_params", "num_params", "params_to_theta", "sample_theta",
    "stn_camera", "theta_to_pixel_matrix", "tps_control_points", "tps_grid", "tps_transform_points", "tps_warp",
]
