"""Named errors of camwarp.

All are subclasses of the built-in ``ValueError`` so that ``except ValueError`` keeps working;
the subclass says *why* a value was refused.
"""

from __future__ import annotations

__all__ = ["CamwarpError", "SingularMatrixError", "InexactDistortionError", "CameraFileError"]


class CamwarpError(ValueError):
    """Base class of camwarp's named value errors."""


class SingularMatrixError(CamwarpError):
    """A pixel matrix that must be inverted is singular (e.g. a zero scale)."""


class InexactDistortionError(CamwarpError):
    """A camera update that the distortion model cannot represent exactly.

    Raised, for example, by :meth:`camwarp.Camera.transform` for a projective map of a camera
    with non-zero distortion: undistort the image first, then apply the map.
    """


class CameraFileError(CamwarpError):
    """A camera file that cannot be read: unknown model, malformed line or missing field.

    The message names the file, the line (where there is one) and the field.
    """
