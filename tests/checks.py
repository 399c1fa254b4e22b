"""Checkers shared by the tests: one tolerance table, and ``check_op`` for every public op."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# One per-dtype tolerance table (absolute, relative) for *values* of warps and geometry.
TOL: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-5, 1e-5),
    torch.float16: (2e-2, 1e-2),
    torch.bfloat16: (1e-1, 2e-2),
}


def assert_close(actual: Tensor, expected: Tensor, dtype: torch.dtype | None = None, scale: float = 1.0,
                 msg: str = "") -> None:
    """``torch.testing.assert_close`` with the table's tolerance for ``dtype`` (times ``scale``)."""
    atol, rtol = TOL[dtype or actual.dtype]
    torch.testing.assert_close(actual, expected.to(actual.dtype), atol=atol * scale, rtol=rtol * scale,
                               msg=(lambda m: f"{msg}\n{m}") if msg else None)


def check_op(fn: Callable[..., Tensor], *inputs: Tensor, batch_dims: int = 1, gradcheck: bool = True,
             **kwargs) -> Tensor:
    """Assert what every op owes: inputs untouched, dtype/device kept, batched == a loop over items,
    an empty batch works, and float64 ``gradcheck`` passes. Each input's first ``batch_dims`` dims
    are batch dims (all inputs share them). Returns ``fn(*inputs, **kwargs)``.
    """
    versions = [x._version for x in inputs]
    snapshot = [x.clone() for x in inputs]
    out = fn(*inputs, **kwargs)
    assert [x._version for x in inputs] == versions, "an input was written in place"
    for x, s in zip(inputs, snapshot):
        assert torch.equal(x, s), "an input's values changed"
    assert out.dtype == inputs[0].dtype, f"dtype {inputs[0].dtype} became {out.dtype}"
    assert out.device == inputs[0].device
    if batch_dims:
        items = [fn(*(x[i] for x in inputs), **kwargs) for i in range(inputs[0].shape[0])]
        torch.testing.assert_close(out, torch.stack(items), atol=1e-6, rtol=1e-6, msg="batched != loop")
        empty = fn(*(x[:0] for x in inputs), **kwargs)
        assert empty.shape == (0, *out.shape[1:]), f"empty batch gave {tuple(empty.shape)}"
    if gradcheck:
        small = [x[:2].detach().double().requires_grad_(x.is_floating_point()) for x in inputs]
        assert torch.autograd.gradcheck(lambda *xs: fn(*xs, **kwargs), small, atol=1e-6, rtol=1e-5)
    return out
