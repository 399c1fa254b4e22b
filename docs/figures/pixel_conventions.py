"""Draw docs/figures/pixel_conventions.png: the pixel grid, the two centre conventions, and where
the half-pixel term of a resize comes from.  Run: ``.venv/bin/python docs/figures/pixel_conventions.py``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

OUT = Path(__file__).with_name("pixel_conventions.png")


def grid_panel(ax) -> None:
    W, H = 4, 3
    for u in range(W):
        for v in range(H):
            ax.add_patch(plt.Rectangle((u - 0.5, v - 0.5), 1, 1, fill=(u + v) % 2 == 0, alpha=0.15,
                                       edgecolor="k", facecolor="tab:blue"))
            ax.plot(u, v, "o", color="tab:red", ms=4)
    for u, v in [(1, 0), (3, 2), (1, 1)]:
        ax.annotate(f"OpenCV ({u}, {v})\ncorner ({u + 0.5}, {v + 0.5})", (u, v), textcoords="offset points",
                    xytext=(4, 6), fontsize=7)
    ax.plot([-0.5], [-0.5], "s", color="k")
    ax.annotate("image corner\nOpenCV (-0.5, -0.5)\ncorner frame (0, 0)", (-0.5, -0.5), textcoords="offset points",
                xytext=(-20, 22), fontsize=7)
    ax.annotate("", xy=(3.5, 2.75), xytext=(-0.5, 2.75), arrowprops=dict(arrowstyle="<->"))
    ax.text(1.5, 2.85, "OpenCV frame: u in [-0.5, W - 0.5]", ha="center", va="top", fontsize=8)
    ax.set_xlim(-1.2, 4.2)
    ax.set_ylim(3.3, -1.5)
    ax.set_aspect("equal")
    ax.set_xlabel("u (column)")
    ax.set_ylabel("v (row)")
    ax.set_title("pixel centres (red) in the two frames, W = 4, H = 3", fontsize=9)


def resize_panel(ax) -> None:
    W, Wn = 6, 2
    s = Wn / W
    for u in range(W):
        ax.add_patch(plt.Rectangle((u - 0.5, 0.6), 1, 0.4, edgecolor="k", facecolor="tab:blue", alpha=0.2))
        ax.plot(u, 0.8, "o", color="tab:red", ms=4)
    for un in range(Wn):
        left = (un - 0.5 + 0.5) / s - 0.5
        ax.add_patch(plt.Rectangle((left, -0.2), 1 / s, 0.4, edgecolor="k", facecolor="tab:orange", alpha=0.3))
        src = (un + 0.5) / s - 0.5  # where the new pixel centre falls in the source
        ax.plot(src, 0.0, "o", color="tab:green", ms=5)
        ax.annotate(f"u' = {un} <- u = {src:g}", (src, 0.0), textcoords="offset points", xytext=(-30, -16), fontsize=7)
        ax.plot([un / s, un / s], [0, 0.8], ":", color="gray")
    ax.annotate("naive u = u'/s (dotted) is off by (1/s - 1)/2 = 1 px", (0.0, 0.0), textcoords="offset points",
                xytext=(-20, 26), fontsize=7, color="gray")
    ax.set_xlim(-1, 6)
    ax.set_ylim(-0.6, 1.3)
    ax.set_yticks([0, 0.8], ["resized\n(W' = 2)", "source\n(W = 6)"])
    ax.set_xlabel("source u (OpenCV frame)")
    ax.set_title("resize edges to edges: u' = s (u + 0.5) - 0.5,  s = W'/W", fontsize=9)


def main() -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1, 1.3]})
    grid_panel(axes[0])
    resize_panel(axes[1])
    fig.tight_layout()
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
