"""Warp benchmark: camwarp's warps against torch eager, torch.compile, Kornia and OpenCV, side by side.

Every case times camwarp and its peers in one process, interleaved (one call of each per round,
``--repeat`` rounds; the best round, or ``--stat median``), with the same thread count for all
(``--threads``, default: every core). It prints one table of times and *speedups* (peer time /
camwarp time: > 1 means camwarp is faster) and, on CUDA, the fraction of the memory-bandwidth limit
(minimum bytes read + written over the measured copy bandwidth). ``--write`` replaces the section
between ``<!-- warp:start -->`` and ``<!-- warp:end -->`` of ``docs/BENCHMARKS.md`` with the table,
the machine (with the load average), versions and command.

    python benchmarks/bench_warp.py                   # CPU, < 5 minutes
    python benchmarks/bench_warp.py --device cuda     # the GPU cases (Triton backend)
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

import camwarp
from camwarp.geometry import denormalize_matrix, normalize_matrix, rotate_matrix
from camwarp.stn.transformer import sample_theta

import _common

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "BENCHMARKS.md"
START, END = "<!-- warp:start -->", "<!-- warp:end -->"
Fn = Callable[[], object]
REF = "camwarp reference backend"  # the same op through torch eager ops (grid_sample / gather)


def optional(name: str):
    try:
        return __import__(name)
    except ImportError:
        return None


cv2 = optional("cv2")
kornia = optional("kornia")


# ----------------------------------------------------------------------------------------- inputs
def stn_inputs(B: int, S: int, device: str, grad: bool = True):
    x = torch.rand(B, 1, S, S, device=device, requires_grad=grad)
    theta = (torch.eye(2, 3, device=device) + 0.1 * torch.randn(B, 2, 3, device=device)).requires_grad_(grad)
    return x, theta


def src_to_dst_from_theta(theta: torch.Tensor, S: int) -> torch.Tensor:
    """Kornia's src->dst pixel matrix ``(B, 2, 3)`` of an ``affine_grid`` theta (same map)."""
    kw = dict(dtype=theta.dtype, device=theta.device)
    full = torch.cat([theta, torch.tensor([[[0.0, 0.0, 1.0]]], **kw).expand(theta.shape[0], 1, 3)], 1)
    src_from_dst = denormalize_matrix((S, S), **kw) @ full @ normalize_matrix((S, S), **kw)
    return torch.linalg.inv(src_from_dst)[:, :2]


def eager_theta(x, theta, size):
    grid = F.affine_grid(theta, [x.shape[0], x.shape[1], size[1], size[0]], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def fwd_bwd(f: Callable[[], torch.Tensor], *leaves: torch.Tensor) -> Fn:
    def run():
        for t in leaves:
            t.grad = None
        f().sum().backward()
    return run


def image(device: str, S: int = 1024):
    x = torch.rand(1, 3, S, S, device=device)
    A = rotate_matrix(20.0, ((S - 1) / 2, (S - 1) / 2), 1.1, device=device)  # src->dst pixels
    return x, A


def theta_of(A: torch.Tensor, S: int) -> torch.Tensor:
    return camwarp.matrix_to_theta(A, (S, S), (S, S))[None]


# ------------------------------------------------------------------------------------------ cases
def cpu_cases(compile_ok: bool) -> list[dict]:
    cases = []
    for B, S in ((64, 28), (256, 42)):
        x, theta = stn_inputs(B, S, "cpu")
        A23 = src_to_dst_from_theta(theta.detach(), S)
        peers = {
            "torch eager": fwd_bwd(lambda x=x, t=theta, S=S: eager_theta(x, t, (S, S)), x, theta),
            REF: fwd_bwd(lambda x=x, t=theta: sample_theta(x, t, backend="reference"), x, theta),
        }
        if compile_ok:
            cfn = torch.compile(eager_theta, dynamic=False)
            peers["torch.compile"] = fwd_bwd(lambda x=x, t=theta, S=S, c=cfn: c(x, t, (S, S)), x, theta)
        if kornia:
            A = A23.clone().requires_grad_()
            peers["kornia"] = fwd_bwd(lambda x=x, A=A, S=S: kornia.geometry.transform.warp_affine(
                x, A, (S, S), align_corners=False), x, A)
        cases.append(dict(name=f"STN sampler fwd+bwd {B}x1x{S}x{S}", target="≥ 2x torch eager",
                          camwarp=fwd_bwd(lambda x=x, t=theta: sample_theta(x, t), x, theta), peers=peers))

    x, A = image("cpu")
    hwc = x[0].permute(1, 2, 0).contiguous().numpy()
    theta = theta_of(A, 1024)
    peers = {"torch eager": lambda: eager_theta(x, theta, (1024, 1024)),
             REF: lambda: camwarp.warp_affine(x, A, (1024, 1024), backend="reference")}
    if cv2:
        peers["OpenCV warpAffine"] = lambda: cv2.warpAffine(hwc, A[:2].double().numpy(), (1024, 1024),
                                                            flags=cv2.INTER_LINEAR)
    if kornia:
        peers["kornia"] = lambda: kornia.geometry.transform.warp_affine(x, A[None, :2], (1024, 1024),
                                                                        align_corners=False)
    if compile_ok:
        cfn = torch.compile(eager_theta, dynamic=False)
        peers["torch.compile"] = lambda: cfn(x, theta, (1024, 1024))
    with torch.no_grad():
        cases.append(dict(name="warp_affine 1x3x1024x1024 bilinear fwd", target="≤ 1.5x OpenCV's time",
                          camwarp=lambda: camwarp.warp_affine(x, A, (1024, 1024)), peers=peers))

    H = A.clone()
    H[2, :2] = torch.tensor([2e-4, -1e-4])
    peers = {REF: lambda: camwarp.warp_perspective(x, H, (1024, 1024), backend="reference")}
    if cv2:
        peers["OpenCV warpPerspective"] = lambda: cv2.warpPerspective(hwc, H.double().numpy(), (1024, 1024))
    if kornia:
        peers["kornia"] = lambda: kornia.geometry.transform.warp_perspective(x, H[None], (1024, 1024),
                                                                             align_corners=False)
    cases.append(dict(name="warp_perspective 1x3x1024x1024 bilinear fwd", target="-",
                      camwarp=lambda: camwarp.warp_perspective(x, H, (1024, 1024)), peers=peers))

    peers = {"F.interpolate(antialias=True)": lambda: F.interpolate(x, size=(512, 512), mode="bilinear",
                                                                   antialias=True, align_corners=False),
             REF: lambda: camwarp.crop_resize(x, (0, 0, 1024, 1024), (512, 512), backend="reference")}
    if cv2:
        peers["OpenCV resize INTER_AREA"] = lambda: cv2.resize(hwc, (512, 512), interpolation=cv2.INTER_AREA)
    if kornia:
        peers["kornia resize(antialias)"] = lambda: kornia.geometry.transform.resize(x, (512, 512),
                                                                                     antialias=True)
    cases.append(dict(name="crop_resize 1024²->512² RGB antialias", target="≤ 2x OpenCV AREA, ≥ 2x F.interpolate",
                      camwarp=lambda: camwarp.crop_resize(x, (0, 0, 1024, 1024), (512, 512)), peers=peers))

    peers = {"F.interpolate": lambda: F.interpolate(x, size=(512, 512), mode="bilinear", align_corners=False),
             REF: lambda: camwarp.crop_resize(x, (0, 0, 1024, 1024), (512, 512), antialias=False,
                                              backend="reference")}
    if cv2:
        peers["OpenCV resize INTER_LINEAR"] = lambda: cv2.resize(hwc, (512, 512), interpolation=cv2.INTER_LINEAR)
    cases.append(dict(name="crop_resize 1024²->512² RGB no antialias", target="-",
                      camwarp=lambda: camwarp.crop_resize(x, (0, 0, 1024, 1024), (512, 512), antialias=False),
                      peers=peers))

    xg = x.clone().requires_grad_()
    peers = {"torch eager": fwd_bwd(lambda: eager_theta(xg, theta, (1024, 1024)), xg),
             REF: fwd_bwd(lambda: camwarp.warp_affine(xg, A, (1024, 1024), backend="reference"), xg)}
    cases.append(dict(name="warp_affine 1x3x1024x1024 fwd+bwd (image grad)", target="-",
                      camwarp=fwd_bwd(lambda: camwarp.warp_affine(xg, A, (1024, 1024)), xg), peers=peers))

    v = torch.rand(1, 1, 96, 96, 96)
    A3 = torch.eye(4)
    A3[:3, :3] = torch.tensor([[0.95, 0.2, 0.0], [-0.2, 0.95, 0.1], [0.0, -0.1, 1.0]])
    th3 = camwarp.matrix_to_theta(A3, (96, 96, 96), (96, 96, 96))[None]
    peers = {"torch eager": lambda: F.grid_sample(v, F.affine_grid(th3, [1, 1, 96, 96, 96], align_corners=False),
                                                  align_corners=False),
             REF: lambda: camwarp.warp_affine3d(v, A3, (96, 96, 96), backend="reference")}
    if kornia:
        peers["kornia"] = lambda: kornia.geometry.transform.warp_affine3d(v, A3[None, :3], (96, 96, 96))
    cases.append(dict(name="warp_affine3d 1x1x96³ trilinear fwd", target="-",
                      camwarp=lambda: camwarp.warp_affine3d(v, A3, (96, 96, 96)), peers=peers))
    return cases


def cuda_cases(compile_ok: bool) -> list[dict]:
    dev, cases = "cuda", []
    x, theta = stn_inputs(4096, 28, dev)
    peers = {"torch eager": fwd_bwd(lambda: eager_theta(x, theta, (28, 28)), x, theta)}
    if compile_ok:
        cfn = torch.compile(eager_theta, dynamic=False)
        peers["torch.compile"] = fwd_bwd(lambda: cfn(x, theta, (28, 28)), x, theta)
    nbytes = 4 * (3 * x.numel())  # read x and grad_out, write grad_x (the forward output is recomputed-free)
    cases.append(dict(name="STN-MNIST fwd+bwd 4096x1x28x28", target="≥ 5x eager, ≥ 2x compile", bytes=nbytes,
                      camwarp=fwd_bwd(lambda: sample_theta(x, theta, backend="triton"), x, theta), peers=peers))
    with torch.no_grad():
        for shape in ((64, 3, 512, 512), (32, 64, 128, 128)):
            y = torch.rand(*shape, device=dev)
            S = shape[-1]
            th = (torch.eye(2, 3, device=dev) + 0.05 * torch.randn(shape[0], 2, 3, device=dev))
            peers = {"torch eager": lambda y=y, th=th, S=S: eager_theta(y, th, (S, S))}
            if compile_ok:
                cfn = torch.compile(eager_theta, dynamic=False)
                peers["torch.compile"] = lambda y=y, th=th, S=S, c=cfn: c(y, th, (S, S))
            cases.append(dict(name=f"affine fwd {'x'.join(map(str, shape))}", target="≥ 70% of bandwidth",
                              bytes=2 * y.numel() * 4,
                              camwarp=lambda y=y, th=th: sample_theta(y, th, backend="triton"), peers=peers))
        v = torch.rand(1, 1, 96, 96, 96, device=dev)
        th3 = (torch.eye(3, 4, device=dev) + 0.05 * torch.randn(1, 3, 4, device=dev))
        peers = {"torch eager": lambda: F.grid_sample(v, F.affine_grid(th3, list(v.shape), align_corners=False),
                                                      align_corners=False)}
        cases.append(dict(name="affine3d fwd 1x1x96³", target="≥ 50% of bandwidth", bytes=2 * v.numel() * 4,
                          camwarp=lambda: sample_theta(v, th3, backend="triton"), peers=peers))
    return cases


# ----------------------------------------------------------------------------------------- timing
def measure(case: dict, repeat: int, sync: Callable[[], None], stat: str = "min") -> dict[str, float]:
    """Per implementation, the best (``stat="min"``) or median time in ms of ``repeat`` interleaved rounds."""
    fns = {"camwarp": case["camwarp"], **case["peers"]}
    for f in fns.values():  # warm-up: compilation, caches, thread pools
        for _ in range(3):
            f()
    sync()
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeat):
        # Each round starts one implementation later: every one follows every other equally often,
        # so none always inherits the caches another one left (e.g. a 12 MB image evicted).
        for k in names[r % len(names):] + names[:r % len(names)]:
            f = fns[k]
            sync()
            t0 = time.perf_counter()
            f()
            sync()
            times[k].append(time.perf_counter() - t0)
    reduce = min if stat == "min" else statistics.median
    return {k: reduce(v) * 1e3 for k, v in times.items()}


def copy_bandwidth(device: str) -> float:
    a = torch.empty(256 * 2**20, dtype=torch.uint8, device=device)
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(20):
        b.copy_(a)
    torch.cuda.synchronize()
    return 2 * a.numel() * 20 / (time.perf_counter() - t0)  # bytes/s, read + write


def machine(device: str) -> str:
    cpu = _common.cpu_name(default=platform.processor() or "unknown CPU")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    text = f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} threads used; load average {load:.1f} at start"
    if device == "cuda":
        text += f"; GPU {torch.cuda.get_device_name()}"
    return text


def versions() -> str:
    import numba  # the CPU backend's compiler

    return _common.versions(("torch", torch), ("camwarp", camwarp), ("numba", numba), ("OpenCV", cv2),
                            ("kornia", kornia), ("triton", optional("triton")))


def table(results: list[tuple[dict, dict[str, float]]], bandwidth: float | None) -> str:
    head = "| case | camwarp ms | peer | peer ms | speedup | target |"
    if bandwidth:
        head = "| case | camwarp ms | % of bandwidth | peer | peer ms | speedup | target |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for case, t in results:
        mine = t["camwarp"]
        bw = f"{100 * case['bytes'] / (mine / 1e3) / bandwidth:.0f}%" if bandwidth else None
        for i, (peer, pt) in enumerate((k, v) for k, v in t.items() if k != "camwarp"):
            cells = [case["name"] if i == 0 else "", f"{mine:.3f}" if i == 0 else ""]
            if bandwidth:
                cells.append(bw if i == 0 else "")
            cells += [peer, f"{pt:.3f}", f"{pt / mine:.2f}x", case["target"] if i == 0 else ""]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_section(text: str) -> None:
    doc = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    block = f"{START}\n{text}\n{END}"
    if START in doc and END in doc:
        doc = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, doc, flags=re.S)
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(doc)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", default=str(os.cpu_count() or 1),
                   help="CPU threads for every peer; a comma list (e.g. 1,2) gives one table per count")
    p.add_argument("--repeat", type=int, default=30, help="interleaved rounds per case")
    p.add_argument("--stat", choices=["min", "median"], default="min",
                   help="time reported per implementation: best of the rounds (default; the least disturbed "
                        "by other processes on a shared machine) or their median")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile peers")
    p.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md (the warp section)")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here")
    tables = []
    for threads in (int(n) for n in args.threads.split(",")):
        torch.manual_seed(0)
        torch.set_num_threads(threads)
        if cv2:
            cv2.setNumThreads(threads)
        header = machine(args.device)
        compile_ok = not args.no_compile
        cases = cuda_cases(compile_ok) if args.device == "cuda" else cpu_cases(compile_ok)
        sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
        bandwidth = copy_bandwidth("cuda") if args.device == "cuda" else None
        results = []
        for case in cases:
            try:
                results.append((case, measure(case, args.repeat, sync, args.stat)))
            except Exception as err:  # a peer that fails here (e.g. torch.compile without a compiler)
                print(f"{case['name']}: skipped a peer ({type(err).__name__}: {err}); retrying without compile",
                      file=sys.stderr)
                case["peers"] = {k: v for k, v in case["peers"].items() if k != "torch.compile"}
                results.append((case, measure(case, args.repeat, sync, args.stat)))
            print(f"done ({threads} threads): {case['name']}", file=sys.stderr)
        out = table(results, bandwidth)
        header += f", {os.getloadavg()[0]:.1f} at the end" if hasattr(os, "getloadavg") else ""
        print(f"\n{threads} thread(s): {header}\n{out}")
        tables.append((threads, header, out))
    if args.write:
        command = "python benchmarks/bench_warp.py " + " ".join(argv if argv is not None else sys.argv[1:])
        write_section(section(tables, args.device, command.strip(), bandwidth, args.stat))
        print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0


def section(tables: list[tuple[int, str, str]], device: str, command: str, bandwidth: float | None,
            stat: str = "min") -> str:
    how = "Best" if stat == "min" else "Median"
    lines = ["## Warps: camwarp against torch, Kornia and OpenCV", "",
             f"{how} of interleaved rounds (one call of every peer per round, the order rotated from round to "
             "round), all peers in one process with "
             "the same thread count. *speedup* = peer time / camwarp time (> 1: camwarp is faster). camwarp "
             "runs its public functions with the automatic backend (`camwarp.warp.dispatch`); the STN rows "
             "time `camwarp.stn.transformer.sample_theta` (what `SpatialTransformer` calls) against "
             "`F.affine_grid` + `F.grid_sample`. *camwarp reference backend* is the same call with "
             "`backend=\"reference\"` (the torch-eager oracle of exactly the same op). OpenCV works on HWC "
             "float32 arrays and quantizes its "
             "interpolation weights to 1/32 pixel (not exact); camwarp matches `grid_sample` to float rounding.",
             "", "A load average above the core count (in each *Machine* line) means other processes shared the "
             "cores during the run: times are then inflated and noisy, multi-threaded ones most (threads wait "
             "for each other's time slices). Compare ratios within a table, and on a shared machine prefer the "
             "1-thread table.", "",
             "camwarp's CPU kernels (numba) run on torch's own OpenMP threads (`camwarp/warp/cpu/_parallel.py`). "
             "`crop_resize` without antialiasing hands a whole-pixel box whose taps stay inside it to "
             "`F.interpolate` of the crop when torch has several threads (torch's kernel is faster there), so "
             "its 2-thread row is that call plus camwarp's per-call checks. On this shared 2-core machine the "
             "STN rows' ratios vary from run to run (64x1x28x28 over this session's runs on 2026-11-26: 1.3x to 1.6x "
             "at 1 thread, 1.0x to 1.25x at 2 threads): read them as a range."]
    for threads, header, out in tables:
        lines += ["", f"### {'GPU' if device == 'cuda' else 'CPU'}, {threads} thread(s)", "", out, "",
                  f"- Machine: {header}"]
    lines += [f"- Versions: {versions()}", f"- Command: `{command}`"]
    if bandwidth:
        lines.append(f"- Copy bandwidth (read + write): {bandwidth / 1e12:.2f} TB/s")
    if device != "cuda":
        lines += ["", "### GPU", "", "not run (no GPU lent to this session): the Triton kernels are tested on CPU "
                  "under `TRITON_INTERPRET=1`; run `python benchmarks/bench_warp.py --device cuda --write` on a GPU "
                  "to fill this table (STN-MNIST 4096x1x28², 64x3x512², 32x64x128², 96³ volume)."]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
