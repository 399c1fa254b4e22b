"""What the benchmark scripts share: the machine and software lines of their reports.

Not a benchmark itself. Each script imports it as ``from _common import ...``: a script run as
``python benchmarks/x.py`` has its folder first on ``sys.path``.
"""

from __future__ import annotations

import platform
from pathlib import Path

__all__ = ["cpu_name", "versions"]


def cpu_name(default: str) -> str:
    """The CPU's model name from ``/proc/cpuinfo``, or ``default`` where that file says nothing."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return default


def versions(*modules: tuple[str, object | None]) -> str:
    """``"Python 3.x, torch 2.y, ..."``: Python, then each ``(name, module)`` in order, skipping ``None``."""
    parts = [f"Python {platform.python_version()}"]
    parts += [f"{name} {module.__version__}" for name, module in modules if module is not None]
    return ", ".join(parts)
