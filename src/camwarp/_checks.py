"""Private argument checks shared by every public function.

Every check raises ``TypeError`` (wrong type) or ``ValueError`` (wrong shape or value) with a
message that names the calling function and the argument and shows what was expected and what
was received, e.g. ``warp_affine: A must have shape (..., 3, 3), got (4, 3)``. Per-call checks
only read metadata (shape, dtype, device), so they cost nothing and never synchronize a GPU.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Sequence
from numbers import Real

import torch
from torch import Tensor

__all__: list[str] = []


def check_tensor(x: object, fn: str, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def check_float(x: Tensor, fn: str, name: str) -> Tensor:
    if not x.is_floating_point():
        raise TypeError(f"{fn}: {name} must be a floating point tensor, got dtype {x.dtype}")
    return x


def check_shape(x: Tensor, fn: str, name: str, spec: str) -> Tensor:
    """Check ``x.shape`` against a spec such as ``"... 3 3"``, ``"... N 2"`` or ``"... C H W"``.

    ``...`` matches any number of leading (batch) dims; a number must match exactly; a letter
    matches any size. ``"... 2|3"`` accepts either size.
    """
    check_tensor(x, fn, name)
    parts = spec.split()
    batched = parts[0] == "..."
    core = parts[1:] if batched else parts
    shape = tuple(x.shape)
    ok = len(shape) >= len(core) if batched else len(shape) == len(core)
    if ok:
        for want, got in zip(core, shape[len(shape) - len(core):]):
            choices = want.split("|")
            if choices[0].isdigit() and got not in {int(c) for c in choices}:
                ok = False
    if not ok:
        pretty = "(" + ", ".join(parts) + ")"
        raise ValueError(f"{fn}: {name} must have shape {pretty}, got {shape}")
    return x


def check_choice(value: object, fn: str, name: str, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{fn}: {name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value  # type: ignore[return-value]


def check_int(value: object, fn: str, name: str, minimum: int | None = None) -> int:
    """Return ``value`` as a Python ``int``: the one rule for every size, index and count argument.

    Accepted: Python and NumPy integers (anything with ``__index__``, 0-d integer arrays
    included), integral finite floats (``640.0``) and 0-d tensors holding an integral value.
    Refused with a ``TypeError`` naming the argument: ``bool``, non-integral or non-finite floats
    (``640.5``), tensors with more than one element, anything else. ``minimum`` (if given) is a
    ``ValueError`` bound.
    """
    if isinstance(value, bool) or (isinstance(value, Tensor) and value.dtype == torch.bool):
        raise TypeError(f"{fn}: {name} must be an int, got {type(value).__name__} {value!r}")
    if isinstance(value, Tensor):
        if value.ndim != 0 or value.is_complex():
            raise TypeError(f"{fn}: {name} must be an int (a 0-d tensor at most), got a tensor of shape "
                            f"{tuple(value.shape)}")
        value = value.item()
    out: int | None = None
    if hasattr(value, "__index__") and not isinstance(value, Tensor):
        try:
            out = operator.index(value)  # type: ignore[arg-type]
        except TypeError:
            out = None
    if out is None and isinstance(value, Real) and math.isfinite(value) and float(value).is_integer():
        out = int(value)
    if out is None:
        what = repr(value) if isinstance(value, Real) else type(value).__name__
        raise TypeError(f"{fn}: {name} must be an int, got {what}")
    if minimum is not None and out < minimum:
        bound = "positive" if minimum == 1 else "non-negative" if minimum == 0 else f"at least {minimum}"
        raise ValueError(f"{fn}: {name} must be {bound}, got {out}")
    return out


def check_size(size: object, fn: str, name: str = "size", dims: Sequence[int] = (2,)) -> tuple[int, ...]:
    """Check an image size ``(W, H)`` (or ``(W, H, D)``): a sequence (tuple, list, 1-d array or
    tensor) of positive ints in the sense of :func:`check_int`, of a length in ``dims``.
    """
    if type(size) is tuple and len(size) in dims and all(type(s) is int and s > 0 for s in size):
        return size  # the common case, checked in a few hundred ns
    if isinstance(size, Tensor) or _is_array(size):
        if getattr(size, "ndim", 1) != 1:
            raise TypeError(f"{fn}: {name} must be a tuple of ints like (W, H), got an array of shape "
                            f"{tuple(size.shape)}")  # type: ignore[union-attr]
        size = list(size)  # type: ignore[arg-type]
    elif not isinstance(size, Sequence) or isinstance(size, (str, bytes)):
        raise TypeError(f"{fn}: {name} must be a tuple of ints like (W, H), got {type(size).__name__}")
    if len(size) not in dims:
        names = " or ".join("(" + ", ".join("WHD"[:d]) + ")" for d in dims)
        raise ValueError(f"{fn}: {name} must have the form {names}, got {_show(size)}")
    try:
        out = tuple(check_int(s, fn, name) for s in size)
    except TypeError:
        raise TypeError(f"{fn}: {name} must contain ints, got {_show(size)}") from None
    if min(out) <= 0:
        raise ValueError(f"{fn}: {name} must be positive, got {out}")
    return out


def _is_array(x: object) -> bool:
    return type(x).__module__ == "numpy" and hasattr(x, "ndim")


def _show(size: Sequence) -> str:
    return "(" + ", ".join(repr(s.item() if isinstance(s, Tensor) and s.ndim == 0 else s) for s in size) + ")"


def check_finite_number(x: object, fn: str, name: str, positive: bool = False) -> float:
    if type(x) is float or type(x) is int:  # the common case
        if math.isfinite(x) and (not positive or x > 0):
            return float(x)
    if isinstance(x, bool) or not isinstance(x, Real):
        raise TypeError(f"{fn}: {name} must be a real number, got {type(x).__name__}")
    value = float(x)
    if not math.isfinite(value) or (positive and value <= 0):
        what = "a positive finite number" if positive else "a finite number"
        raise ValueError(f"{fn}: {name} must be {what}, got {x!r}")
    return value


def as_tensor(x: object, fn: str, name: str, dtype: torch.dtype | None = None,
              device: torch.device | str | None = None) -> Tensor:
    """Make a number, sequence or tensor a float tensor; tensors keep their dtype unless given."""
    if isinstance(x, Tensor):
        if dtype is None and not x.is_floating_point():
            dtype = torch.get_default_dtype()
        return x.to(dtype=dtype or x.dtype, device=device or x.device)
    if isinstance(x, bool) or x is None:
        raise TypeError(f"{fn}: {name} must be a number or a tensor, got {type(x).__name__}")
    try:
        return torch.as_tensor(x, dtype=dtype or torch.get_default_dtype(), device=device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{fn}: {name} must be a number, a sequence of numbers or a tensor, "
                        f"got {type(x).__name__}") from err


def common_float(*values: object, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> tuple[torch.dtype, torch.device]:
    """The dtype and device shared by the tensor arguments (default float dtype, CPU otherwise)."""
    tensors = [v for v in values if isinstance(v, Tensor)]
    if dtype is None:
        floats = [t.dtype for t in tensors if t.is_floating_point()]
        dtype = floats[0] if floats else torch.get_default_dtype()
        for d in floats[1:]:
            dtype = torch.promote_types(dtype, d)
    if device is None:
        device = tensors[0].device if tensors else torch.device("cpu")
    return dtype, torch.device(device)


def values_readable(*tensors: Tensor) -> bool:
    """Whether a value check may read ``tensors``' values: all on the CPU and not inside ``torch.compile``.

    The one rule for value checks (finite, non-singular, in range): where reading a value is free,
    bad values raise; on another device (reading would synchronize it) or while ``torch.compile``
    traces (reading would break the graph), the affected batch items come out NaN instead, so a
    bad value is never a finite wrong answer (``docs/conventions.md``, "Value checks").
    """
    return all(t.device.type == "cpu" for t in tensors) and not torch.compiler.is_compiling()


def broadcast_batch(fn: str, **shapes: tuple[int, ...]) -> torch.Size:
    """Broadcast named batch shapes, or raise naming the arguments that disagree."""
    dims: list[int] = []
    for shape in shapes.values():  # numpy's rule, right-aligned (torch.broadcast_shapes costs ~40 us)
        shape = tuple(shape)
        dims = [1] * (len(shape) - len(dims)) + dims
        for i, n in enumerate(shape, len(dims) - len(shape)):
            if n != dims[i] and 1 not in (n, dims[i]):
                break
            dims[i] = n if dims[i] == 1 else dims[i]
        else:
            continue
        listing = ", ".join(f"{k} {tuple(v)}" for k, v in shapes.items())
        raise ValueError(f"{fn}: batch dimensions do not broadcast: {listing}")
    return torch.Size(dims)
