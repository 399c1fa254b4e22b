"""``camwarp prepare``: apply a chain of image ops to a whole dataset folder, cameras and poses included.

A dataset (COLMAP ``sparse/0`` text model, nerfstudio ``transforms.json``, or one camera file for
all images; optional depth maps and masks with matching names) is read image by image; every image,
depth map, mask and 2D point is moved by the same op chain (:mod:`camwarp.transforms`, one
resampling per image) and the cameras and poses follow exactly (``Camera.transform``: ``A K = K' R``,
poses turned by ``R``). Work is parallel, streamed with a bounded queue, written atomically and
resumable after any kill; ``shard=(i, n)`` splits it over machines and :func:`merge_shards` joins
the shards' camera files. Modules: :mod:`~camwarp.prepare.layouts` (discovery and metadata files),
:mod:`~camwarp.prepare.colmap` (``images.txt``), :mod:`~camwarp.prepare.media` (image/depth/mask
I/O), :mod:`~camwarp.prepare.runner` (the job), :mod:`~camwarp.prepare.worker` (one item),
:mod:`~camwarp.prepare.state` (records), :mod:`~camwarp.prepare.lock` (one run per output folder),
:mod:`~camwarp.prepare.atomic` (atomic writes).
See ``docs/prepare.md``.
"""

from __future__ import annotations

from .colmap import ColmapImage, iter_colmap_images, read_colmap_images, rotate_pose, write_colmap_images
from .layouts import ColmapLayout, Layout, LayoutError, NerfstudioLayout, SingleCameraLayout, detect_layout
from .lock import JobLockedError
from .media import MediaError, read_depth, read_image, read_mask, write_depth, write_image, write_mask
from .runner import JobError, PrepareResult, default_workers, merge_shards, prepare
from .state import JobStateError

__all__ = ["ColmapImage", "ColmapLayout", "JobError", "JobLockedError", "JobStateError", "Layout", "LayoutError",
           "MediaError", "NerfstudioLayout", "PrepareResult", "SingleCameraLayout", "default_workers", "detect_layout",
           "iter_colmap_images", "merge_shards", "prepare", "read_colmap_images", "read_depth", "read_image",
           "read_mask", "rotate_pose", "write_colmap_images", "write_depth", "write_image", "write_mask"]
