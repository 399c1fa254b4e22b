"""``Compose``: a chain of sample ops resampled once per image, and ``from_op_list`` for the CLI.

Consecutive matrix ops are fused by multiplying their matrices (``dst_from_src = A_n ... A_1``), so
a crop + resize + rotate chain costs one interpolation and one antialiasing step per image, and
keypoints, boxes and the camera see the exact product. A non-matrix op (``Undistort``,
``Distort``) ends a segment: the fused matrix is applied, then the remap, then the next segment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from .kernels import KernelOptions, apply
from .ops import CenterCrop, Crop, HFlip, Pad, Resize, Rot90, SampleInfo, Transform, VFlip
from .steps import MatrixStep, Step

__all__ = ["Compose", "from_op_list", "OP_NAMES"]


class Compose(Transform):
    """Apply ``transforms`` in order, fusing consecutive matrix steps into one resampling.

    The Compose's ``options`` and ``kinds`` are used for every op (an op's own are ignored here).

    Args:
        transforms: ops (nested ``Compose`` are flattened).
        options: :class:`KernelOptions` for all resampling.
        kinds: kinds of extra sample keys.

    Example:
        >>> from camwarp.transforms import CenterCrop, Resize
        >>> chain = Compose([CenterCrop(1920, 1080), Resize(640, 360)])
        >>> chain.get_step(SampleInfo((2880, 2160))).matrix[0].tolist()
        [0.3333333333333333, 0.0, -160.33333333333334]
    """

    def __init__(self, transforms: Sequence[Transform], *, options: KernelOptions | None = None,
                 kinds: Mapping[str, str] | None = None) -> None:
        super().__init__(options=options, kinds=kinds)
        if isinstance(transforms, (str, Transform)) or not isinstance(transforms, Sequence):
            raise TypeError(f"Compose: transforms must be a list of transforms, got {type(transforms).__name__}")
        flat: list[Transform] = []
        for i, t in enumerate(transforms):
            if not isinstance(t, Transform):
                raise TypeError(f"Compose: transforms[{i}] must be a camwarp transform, got {type(t).__name__}")
            flat.extend(t.transforms if isinstance(t, Compose) else [t])
        self.transforms = flat
        self.needs_camera = any(t.needs_camera for t in flat)

    def steps(self, info: SampleInfo) -> list[Step]:
        """Return the chain's steps for a sample described by ``info``, matrix steps fused.

        Camera-dependent ops see the camera moved by the steps before them.
        """
        out: list[Step] = []
        before_last = info.camera  # the camera before out[-1] (the current one while out is empty)
        for op in self.transforms:
            if op.needs_camera and out and before_last is not None:
                info = replace(info, camera=out[-1].move_camera(before_last)[0])
            step = op.get_step(info)
            if out and isinstance(step, MatrixStep) and isinstance(out[-1], MatrixStep):
                out[-1] = out[-1].then(step)
            else:
                if out and before_last is not None:
                    before_last = out[-1].move_camera(before_last)[0]
                out.append(step)
            info = replace(info, size=step.size)
        return out

    def get_step(self, info: SampleInfo) -> Step:
        """Return the single fused step of an all-matrix chain (ValueError if it has a remap)."""
        steps = self.steps(info)
        if len(steps) != 1:
            raise ValueError(f"Compose.get_step: the chain has {len(steps)} segments (a non-matrix op such as "
                             f"Undistort splits it); call the Compose on a sample instead")
        return steps[0]

    def __call__(self, sample: Mapping) -> dict:
        """Return a new sample: each segment of the chain applied with one resampling per image."""
        info = SampleInfo.of(sample, self.kinds, fn="Compose")
        out = dict(sample)
        for step in self.steps(info):
            out = apply(out, step, self.options, self.kinds)
        return out

    def __repr__(self) -> str:
        inner = ", ".join(map(repr, self.transforms))
        return f"Compose([{inner}])"


def _undistort(*args):
    from .undistort import Undistort

    return Undistort(*args)


OP_NAMES = {"center_crop": CenterCrop, "resize": Resize, "crop": Crop, "pad": Pad, "hflip": HFlip,
            "vflip": VFlip, "rot90": Rot90, "undistort": _undistort}


def from_op_list(ops: Sequence[tuple[str, Sequence]], *, options: KernelOptions | None = None,
                 kinds: Mapping[str, str] | None = None) -> Compose:
    """Build a ``Compose`` from the CLI's op list, e.g. ``[("center_crop", (1920, 1080)), ("resize", (640, 360))]``.

    Names and arguments: ``center_crop (w, h)``, ``resize (w, h)``, ``crop (x0, y0, w, h)``,
    ``pad (left, top, right, bottom)``, ``hflip ()``, ``vflip ()``, ``rot90 (k,)``,
    ``undistort (alpha,)`` (or ``()`` for alpha 0).

    Raises:
        TypeError, ValueError: naming the op's index and name (unknown name, wrong arguments).

    Example:
        >>> from_op_list([("center_crop", (1920, 1080)), ("resize", (640, 360))])
        Compose([CenterCrop(w=1920, h=1080), Resize(w=640, h=360)])
    """
    if isinstance(ops, (str, bytes)) or not isinstance(ops, Sequence):
        raise TypeError(f"from_op_list: ops must be a list of (name, args) pairs, got {type(ops).__name__}")
    built = []
    for i, item in enumerate(ops):
        if isinstance(item, (str, bytes)) or not isinstance(item, Sequence) or len(item) != 2:
            raise TypeError(f"from_op_list: ops[{i}] must be a (name, args) pair, got {item!r}")
        name, args = item
        if name not in OP_NAMES:
            raise ValueError(f"from_op_list: ops[{i}] has unknown name {name!r}; known: {', '.join(OP_NAMES)}")
        if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
            raise TypeError(f"from_op_list: ops[{i}] ({name}) arguments must be a tuple, got {args!r}")
        try:
            built.append(OP_NAMES[name](*args))
        except TypeError as err:
            raise TypeError(f"from_op_list: ops[{i}] ({name}{tuple(args)}): {err}") from None
        except ValueError as err:
            raise ValueError(f"from_op_list: ops[{i}] ({name}{tuple(args)}): {err}") from None
    return Compose(built, options=options, kinds=kinds)
