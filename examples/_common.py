"""What the example scripts share: the self-check, the ``--out`` option and the figure's tail.

Not an example itself. Each script imports it as ``from _common import ...``: a script run as
``python examples/x.py`` has its folder first on ``sys.path``. Also here: the two
measuring tools of the scripts that follow a Gaussian blob through a warp (``gaussian``,
``centroid``); pixel coordinates are in the OpenCV centre frame (``docs/conventions.md``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

__all__ = ["check", "example_parser", "output_dir", "gaussian", "centroid", "pyplot", "save_figure"]


def check(ok: bool, what: str) -> None:
    """Print a check's outcome; stop the script with a non-zero exit code when it fails."""
    print(f"  [{'ok' if ok else 'FAILED'}] {what}")
    if not ok:
        raise SystemExit(f"check failed: {what}")


def example_parser(doc: str) -> argparse.ArgumentParser:
    """The command line every example starts from: its docstring's first line and ``--out DIR``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="directory for the figure (default: a temp dir)")
    return parser


def output_dir(out: Path | None, prefix: str) -> Path:
    """The figure's directory: ``out`` (created if missing), or a new temporary one named ``prefix...``."""
    out_dir = out or Path(tempfile.mkdtemp(prefix=prefix))
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def gaussian(center: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """``(H, W)`` float32 Gaussian blob at pixel ``center`` ``(u, v)``; ``size`` is ``(W, H)``."""
    W, H = size
    u = torch.arange(W, dtype=torch.float32) - float(center[0])
    v = torch.arange(H, dtype=torch.float32) - float(center[1])
    return torch.exp(-(v[:, None] ** 2 + u[None, :] ** 2) / (2 * sigma**2))


def centroid(image: torch.Tensor) -> torch.Tensor:
    """Intensity-weighted mean pixel ``(u, v)`` of a ``(H, W)`` image, in float64."""
    H, W = image.shape
    w = image.detach().to(torch.float64)
    u, v = torch.arange(W, dtype=torch.float64), torch.arange(H, dtype=torch.float64)
    return torch.stack([(w.sum(0) * u).sum(), (w.sum(1) * v).sum()]) / w.sum()


def pyplot():
    """``matplotlib.pyplot`` on the file-only Agg backend, imported when the figure is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, dpi: int = 80) -> None:
    """Lay out ``fig``, write it to ``path``, close it and print ``figure: PATH``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    print(f"figure: {path}")
