"""The MNIST reader on tiny generated gzip IDX files (no network, no /work/shared), MD5 checks,
downloads through a fake ``urlopen``, and the embedded subset."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import urllib.error

import numpy as np
import pytest
import torch

from camwarp.data import mnist


def _idx_bytes(array: np.ndarray) -> bytes:
    """Encode an IDX file by the format's definition (independent of the reader)."""
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}[array.dtype]
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _write_split(root, split: str, n: int = 5, seed: int = 0) -> dict[str, str]:
    """Write a tiny split (gzip IDX images + labels); return name -> MD5 of the written files."""
    rng = np.random.default_rng(seed)
    arrays = {"images": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
              "labels": rng.integers(0, 10, (n,), dtype=np.uint8)}
    md5s = {}
    for kind, arr in arrays.items():
        key = f"{split}-{kind}"
        path = root / mnist.MNIST_FILES[key][0]
        with gzip.open(path, "wb") as f:
            f.write(_idx_bytes(arr))
        md5s[key] = hashlib.md5(path.read_bytes()).hexdigest()
    return {**md5s, "arrays": arrays}


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    info = {s: _write_split(tmp_path, s, n, i) for i, (s, n) in enumerate((("train", 7), ("test", 4)))}
    files = {k: (name, info[k.split("-")[0]][k]) for k, (name, _) in mnist.MNIST_FILES.items()}
    monkeypatch.setattr(mnist, "MNIST_FILES", files)
    return tmp_path, info


def test_read_idx_roundtrip_uint8_and_int32(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    b = np.array([[-5, 70000], [1, 2]], dtype=np.int32)
    (tmp_path / "a.idx").write_bytes(_idx_bytes(a))
    with gzip.open(tmp_path / "b.idx.gz", "wb") as f:
        f.write(_idx_bytes(b))
    np.testing.assert_array_equal(mnist.read_idx(tmp_path / "a.idx"), a)
    got = mnist.read_idx(tmp_path / "b.idx.gz")
    assert got.dtype.isnative and got.dtype.kind == "i" and got.dtype.itemsize == 4
    np.testing.assert_array_equal(got, b)


@pytest.mark.parametrize("payload, match", [(b"\x01\x00\x08\x01", "bad magic"),
                                            (struct.pack(">BBBBI", 0, 0, 0x42, 1, 2) + b"ab", "type code"),
                                            (struct.pack(">BBBBI", 0, 0, 8, 1, 5) + b"abc", "needs 5"),
                                            (struct.pack(">BBBB", 0, 0, 8, 3) + b"\x00", "truncated")])
def test_read_idx_rejects_malformed_files(tmp_path, payload, match):
    (tmp_path / "bad").write_bytes(payload)
    with pytest.raises(ValueError, match=f"read_idx: .*{match}"):
        mnist.read_idx(tmp_path / "bad")


def test_load_mnist_reads_checked_files(tiny_mnist):
    root, info = tiny_mnist
    for split, n in (("train", 7), ("test", 4)):
        images, labels = mnist.load_mnist(root, split)
        assert images.dtype == torch.uint8 and images.shape == (n, 28, 28)
        assert labels.dtype == torch.int64
        np.testing.assert_array_equal(images.numpy(), info[split]["arrays"]["images"])
        np.testing.assert_array_equal(labels.numpy(), info[split]["arrays"]["labels"])


def test_load_mnist_md5_mismatch_is_a_clear_error(tiny_mnist):
    root, _ = tiny_mnist
    path = root / mnist.MNIST_FILES["test-labels"][0]
    with gzip.open(path, "wb") as f:  # same format, other content: only the MD5 can tell
        f.write(_idx_bytes(np.zeros(4, dtype=np.uint8)))
    with pytest.raises(mnist.MNISTUnavailableError, match=r"load_mnist: .*t10k-labels.*MD5 .* expected"):
        mnist.load_mnist(root, "test")


def test_load_mnist_missing_file_and_bad_split(tmp_path):
    with pytest.raises(mnist.MNISTUnavailableError, match=r"load_mnist: .*not found"):
        mnist.load_mnist(tmp_path, "train")
    with pytest.raises(ValueError, match="load_mnist: split must be one of"):
        mnist.load_mnist(tmp_path, "val")


def test_download_without_network_says_so(tmp_path, monkeypatch):
    calls = []

    def offline(url, timeout=None):
        calls.append(url)
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(mnist.urllib.request, "urlopen", offline)
    with pytest.raises(mnist.MNISTUnavailableError) as err:
        mnist.load_mnist(tmp_path / "cache", "train", download=True)
    message = str(err.value)
    assert "could not download" in message and "Name or service not known" in message
    assert "--data-dir" in message and "\n" not in message
    assert len(calls) == len(mnist.MIRRORS)  # every mirror tried once for the first file


def test_download_fetches_checks_and_skips_good_files(tiny_mnist, monkeypatch):
    src, _ = tiny_mnist
    served = {name: (src / name).read_bytes() for name, _ in mnist.MNIST_FILES.values()}
    calls = []

    def fake(url, timeout=None):
        calls.append(url)
        if url.startswith(mnist.MIRRORS[0]):
            return io.BytesIO(b"corrupt")  # the first mirror serves garbage: MD5 must reject it
        return io.BytesIO(served[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(mnist.urllib.request, "urlopen", fake)
    dest = src / "downloaded"
    images, labels = mnist.load_mnist(dest, "test", download=True)
    assert images.shape == (4, 28, 28) and len(calls) == 8
    assert sorted(p.name for p in dest.iterdir()) == sorted(served)  # no temporary files left behind
    calls.clear()
    mnist.download_mnist(dest)
    assert calls == []  # everything present and checked: nothing fetched


def test_default_cache_dir_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CAMWARP_CACHE", str(tmp_path))
    assert mnist.default_cache_dir() == tmp_path / "mnist"


def test_embedded_subset_is_real_balanced_mnist():
    images, labels = mnist.load_subset()
    assert images.shape == (6000, 28, 28) and images.dtype == torch.uint8
    assert torch.bincount(labels, minlength=10).tolist() == [600] * 10
    with np.load(mnist.SUBSET_PATH) as npz:
        indices = npz["indices"]
    assert len(set(indices.tolist())) == 6000 and indices.min() >= 0 and indices.max() < 10000
    # MNIST digits: dark background border, bright strokes in the middle.
    assert images[:, :, :2].float().mean() < 1 and images[:, 8:20, 8:20].float().mean() > 60
    assert mnist.SUBSET_PATH.stat().st_size < 2_000_000


def test_load_subset_bad_file(tmp_path):
    np.savez(tmp_path / "x.npz", images=np.zeros((2, 28, 28), dtype=np.float32), labels=np.zeros(2))
    with pytest.raises(mnist.MNISTUnavailableError, match="load_subset"):
        mnist.load_subset(tmp_path / "x.npz")
    with pytest.raises(mnist.MNISTUnavailableError, match="load_subset"):
        mnist.load_subset(tmp_path / "missing.npz")
