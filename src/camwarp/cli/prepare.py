"""``camwarp prepare INPUT_DIR OUTPUT_DIR [ops...]``: a dataset folder through a chain of image ops.

Parses the flags and calls :func:`camwarp.prepare.prepare` (or :func:`camwarp.prepare.merge_shards`)
with a tqdm progress bar. Exit codes: 0 done; 1 some files failed (listed on stderr, the rest is
written); 2 bad flags or a job that cannot run (one line on stderr: another run holds the output
folder, a full disk, a read-only output; re-run to resume); 130 interrupted (re-run the same
command to resume). See ``docs/prepare.md``.
"""

from __future__ import annotations

import argparse
import sys

from . import CliError
from ._ops import add_op_arguments, add_undistort_argument, parse_ops

__all__ = ["register", "run"]

_EPILOG = """examples:
  camwarp prepare data/garden out/garden --undistort --center-crop 1920x1080 --resize 640x360
  camwarp prepare data/garden out/garden --resize 640x360 --shard 3/8   # shard 3 of 0..7
  camwarp prepare data/garden out/garden --merge-shards                  # once all shards are done
Layouts: COLMAP sparse/0/{cameras,images}.txt + images/, nerfstudio transforms.json, or one camera
file (camera.json|yaml|yml|txt or --camera FILE) for images/; depth maps in depths/, masks in masks/.
Re-run the same command after an interruption to resume."""


def _int_in(lo: int, hi: int | None, what: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = lo - 1
        if value < lo or (hi is not None and value > hi):
            bound = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
            raise argparse.ArgumentTypeError(f"expected {what} {bound}, got {text!r}")
        return value
    return parse


def parse_shard(text: str) -> tuple[int, int]:
    """``"3/8"`` -> ``(3, 8)``: shard ``i`` of ``n``, ``0 <= i < n`` (Slurm: ``$SLURM_ARRAY_TASK_ID/N``)."""
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"expected i/n with 0 <= i < n (e.g. 0/4), got {text!r}")
    return i, n


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``prepare`` sub-command."""
    p = subparsers.add_parser("prepare", help="apply a chain of ops to a dataset folder, cameras included",
                              description=__doc__.split("\n\n")[0], epilog=_EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input_dir", metavar="INPUT_DIR", help="the dataset folder (read only)")
    p.add_argument("output_dir", metavar="OUTPUT_DIR", help="the new dataset folder (same layout)")
    group = add_op_arguments(p)
    add_undistort_argument(group)
    job = p.add_argument_group("job")
    job.add_argument("--workers", type=_int_in(1, None, "a number of workers"), default=None,
                     help="worker processes (default: all cores)")
    job.add_argument("--shard", type=parse_shard, default=None, metavar="i/n",
                     help="process only images with index %% n == i (0-based); merge with --merge-shards")
    job.add_argument("--merge-shards", action="store_true",
                     help="merge the finished shards' records into the camera/pose files")
    job.add_argument("--camera", metavar="FILE", default=None, help="one camera file for every image")
    job.add_argument("--jpeg-quality", type=_int_in(1, 100, "a JPEG quality"), default=95, metavar="Q",
                     help="JPEG/WebP quality 1..100 (default 95)")
    job.add_argument("--png-compression", type=_int_in(0, 9, "a PNG compression level"), default=6, metavar="L",
                     help="PNG zlib level 0..9 (default 6)")
    job.add_argument("--fsync", action="store_true", help="flush every file to the disk (survives power loss)")
    job.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run, _parser=p)


def _report(errors: list[tuple[str, str]], out) -> None:
    print(f"camwarp prepare: {len(errors)} file(s) failed:", file=out)
    for name, message in errors:
        print(f"  {name}: {message}", file=out)


def run(args: argparse.Namespace) -> int:
    """Run ``camwarp prepare``; return the exit code (a file-system error is one line, exit 2)."""
    from ..prepare.atomic import os_error_message  # the library loads only when the command runs

    try:
        return _run(args)
    except OSError as err:  # reading the input, or one the library did not expect: one line all the same
        if err.errno is None:
            raise
        raise CliError(os_error_message(err)) from None


def _run(args: argparse.Namespace) -> int:
    from ..prepare import merge_shards, prepare

    ops = parse_ops(args)
    if args.merge_shards:
        if args.shard is not None:
            raise CliError("--merge-shards merges all shards; drop --shard")
        errors = merge_shards(args.input_dir, args.output_dir, camera=args.camera, ops=ops or None,
                              fsync=args.fsync)
        if errors:
            _report(errors, sys.stderr)
            return 1
        print(f"camwarp prepare: merged the shards into {args.output_dir}", file=sys.stderr)
        return 0
    if not ops:
        raise CliError("no ops given (e.g. --resize 640x360); see camwarp prepare --help")

    from tqdm import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: the workers are forked
    bar = None

    def progress(event: str, value: object) -> None:
        nonlocal bar
        if event == "total":
            shard = "" if args.shard is None else f" {args.shard[0]}/{args.shard[1]}"
            bar = tqdm(total=value, unit="img", desc=f"prepare{shard}", disable=True if args.no_progress else None,
                       dynamic_ncols=True)
        elif event == "error":
            bar.write(f"camwarp prepare: {value[0]}: {value[1]}", file=sys.stderr)
            bar.update(1)
        else:
            bar.update(1)

    try:
        result = prepare(args.input_dir, args.output_dir, ops, workers=args.workers, shard=args.shard or (0, 1),
                         jpeg_quality=args.jpeg_quality, png_compression=args.png_compression, camera=args.camera,
                         fsync=args.fsync, progress=progress)
    except KeyboardInterrupt:
        print("camwarp prepare: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()
    done = f"{result.processed} image(s) written, {result.skipped} already done"
    where = "" if result.merged else "; merge with --merge-shards once every shard is done"
    print(f"camwarp prepare: {done}{where}", file=sys.stderr)
    if result.errors:
        _report(result.errors, sys.stderr)
        return 1
    return 0
