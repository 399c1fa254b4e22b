"""MNIST from the original gzip IDX files: reader, MD5 check, optional download, embedded subset.

:func:`load_mnist` reads the four original files (``train-images-idx3-ubyte.gz`` ...) from a
directory the user names, checks each against its published MD5 and returns ``uint8`` images
``(N, 28, 28)`` and ``int64`` labels ``(N,)``. With ``download=True`` a missing file is fetched
from the usual mirrors into that directory (by default the cache ``~/.cache/camwarp/mnist``, or
``$CAMWARP_CACHE/mnist``); without a network the error says so and where to put the files.
:func:`load_subset` returns the small real subset shipped inside the package (made by
``python -m camwarp.data.subset``), which the demo and the tests use.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["MNIST_FILES", "MIRRORS", "MNISTUnavailableError", "read_idx", "md5sum", "load_mnist",
           "download_mnist", "default_cache_dir", "load_subset", "SUBSET_PATH"]

# name -> (file name, MD5 of the gzip file as published with the original distribution)
MNIST_FILES: dict[str, tuple[str, str]] = {
    "train-images": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train-labels": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test-images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    "test-labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
}
# Tried in order (the same mirrors torchvision uses).
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
SUBSET_PATH = Path(__file__).with_name("mnist_subset.npz")

# IDX type codes (third byte of the magic number) -> numpy big-endian dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class MNISTUnavailableError(OSError):
    """MNIST files are missing, corrupt (MD5 mismatch) or could not be downloaded."""


def md5sum(path: str | os.PathLike) -> str:
    """Return the hex MD5 digest of a file, read in 1 MiB chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed when the name ends in ``.gz``) into a numpy array.

    Format (LeCun's MNIST page): a big-endian magic ``0x0000TTNN`` (``TT`` the element type,
    ``0x08`` for ``uint8``; ``NN`` the number of dimensions), then ``NN`` big-endian ``int32``
    sizes, then the data in row-major order.

    Args:
        path: file path; ``.gz`` files are decompressed.

    Returns:
        Array of shape given by the header, native byte order (``uint8`` for MNIST).

    Raises:
        ValueError: bad magic number, unknown type code, or data size that disagrees with the header.

    Example:
        >>> import gzip, struct, tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "x-idx1-ubyte.gz")
        >>> with gzip.open(p, "wb") as f: _ = f.write(struct.pack(">BBBBI", 0, 0, 8, 1, 3) + bytes([7, 1, 2]))
        >>> read_idx(p).tolist()
        [7, 1, 2]
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"read_idx: {os.fspath(path)!r} is not an IDX file (bad magic number)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"read_idx: {os.fspath(path)!r} has unknown IDX type code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"read_idx: {os.fspath(path)!r} is truncated inside its header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"read_idx: {os.fspath(path)!r} holds {len(raw) - header} data bytes, "
                         f"header {shape} needs {expected}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def default_cache_dir() -> Path:
    """Return the download cache: ``$CAMWARP_CACHE/mnist``, else ``$XDG_CACHE_HOME/camwarp/mnist``,
    else ``~/.cache/camwarp/mnist``."""
    if os.environ.get("CAMWARP_CACHE"):
        return Path(os.environ["CAMWARP_CACHE"]) / "mnist"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "camwarp" / "mnist"


def _check_file(path: Path, md5: str, fn: str) -> None:
    got = md5sum(path)
    if got != md5:
        raise MNISTUnavailableError(f"{fn}: {path} has MD5 {got}, expected {md5}: the file is corrupt or "
                                    "not the original MNIST file; delete it and download it again")


def download_mnist(root: str | os.PathLike | None = None, mirrors: tuple[str, ...] = MIRRORS,
                   timeout: float = 30.0) -> Path:
    """Download the four MNIST files that are missing from ``root`` and check their MD5s.

    Args:
        root: target directory (created); default :func:`default_cache_dir`.
        mirrors: base URLs tried in order for each file.
        timeout: seconds per connection attempt.

    Returns:
        The directory holding the four checked files.

    Raises:
        MNISTUnavailableError: no mirror could deliver a file with the right MD5 (for example no
            internet); the message lists the URLs tried and the errors.
    """
    root = Path(root) if root is not None else default_cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    for name, md5 in MNIST_FILES.values():
        target = root / name
        if target.exists() and md5sum(target) == md5:
            continue
        errors = []
        for base in mirrors:
            url = base + name
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    with tempfile.NamedTemporaryFile(dir=root, delete=False) as tmp:
                        shutil.copyfileobj(response, tmp)
                if md5sum(tmp.name) != md5:
                    os.unlink(tmp.name)
                    errors.append(f"{url}: MD5 mismatch")
                    continue
                os.replace(tmp.name, target)
                break
            except (urllib.error.URLError, OSError, ValueError) as err:
                errors.append(f"{url}: {err}")
        else:
            raise MNISTUnavailableError(
                f"download_mnist: could not download {name} ({'; '.join(errors)}). Without internet, copy "
                f"the four original MNIST files ({', '.join(n for n, _ in MNIST_FILES.values())}) into a "
                f"directory and pass it as root (or --data-dir).")
    return root


def load_mnist(root: str | os.PathLike | None = None, split: str = "train",
               download: bool = False) -> tuple[Tensor, Tensor]:
    """Read one MNIST split from the original gzip IDX files, MD5-checked.

    Args:
        root: directory holding the files; default :func:`default_cache_dir`.
        split: ``"train"`` (60000 digits) or ``"test"`` (10000 digits).
        download: fetch missing files from :data:`MIRRORS` into ``root`` first.

    Returns:
        ``(images, labels)``: ``uint8`` tensor ``(N, 28, 28)`` (0 = background) and ``int64`` ``(N,)``.

    Raises:
        ValueError: unknown ``split``.
        MNISTUnavailableError: a file is missing (and ``download`` is off), fails its MD5 check,
            or cannot be downloaded; or the images and labels disagree in count.
    """
    fn = "load_mnist"
    if split not in ("train", "test"):
        raise ValueError(f"{fn}: split must be one of 'train', 'test', got {split!r}")
    root = Path(root) if root is not None else default_cache_dir()
    if download:
        download_mnist(root)
    arrays = []
    for kind in ("images", "labels"):
        name, md5 = MNIST_FILES[f"{split}-{kind}"]
        path = root / name
        if not path.exists():
            raise MNISTUnavailableError(f"{fn}: {path} not found; put the original MNIST files in {root} "
                                        "or pass download=True (camwarp stn train --download)")
        _check_file(path, md5, fn)
        arrays.append(read_idx(path))
    images, labels = arrays
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise MNISTUnavailableError(f"{fn}: images {images.shape} and labels {labels.shape} of split "
                                    f"{split!r} in {root} do not match")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def load_subset(path: str | os.PathLike | None = None) -> tuple[Tensor, Tensor]:
    """Return the real MNIST digits embedded in the package (default :data:`SUBSET_PATH`).

    The subset is drawn from the official *test* split by ``python -m camwarp.data.subset`` (see
    that module for how); it carries the indices it was drawn from (``indices`` in the npz).

    Returns:
        ``(images, labels)``: ``uint8`` ``(N, 28, 28)`` and ``int64`` ``(N,)``.

    Raises:
        MNISTUnavailableError: the file is missing or malformed.

    Example:
        >>> images, labels = load_subset()
        >>> images.dtype, tuple(images.shape[1:]), int(labels.max())
        (torch.uint8, (28, 28), 9)
    """
    path = Path(path) if path is not None else SUBSET_PATH
    try:
        with np.load(path) as npz:
            images, labels = npz["images"], npz["labels"]
    except (OSError, KeyError, ValueError) as err:
        raise MNISTUnavailableError(f"load_subset: cannot read the embedded MNIST subset {path}: {err}") from err
    if images.dtype != np.uint8 or images.ndim != 3 or labels.shape != images.shape[:1]:
        raise MNISTUnavailableError(f"load_subset: {path} holds images {images.shape} {images.dtype} and "
                                    f"labels {labels.shape}; expected uint8 (N, 28, 28) and (N,)")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))
