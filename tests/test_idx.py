"""Tests for aelab.data.idx: tiny synthetic IDX files, plus the real data set when installed."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import threading
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from aelab.data.sources.idx import (
    FASHION_MNIST_FILES,
    SYSTEM_DIR,
    DataError,
    FileSpec,
    download,
    find_file,
    load_fashion_mnist,
    locate,
    read_idx,
    read_idx_verified,
    verify,
    write_idx,
)

APT = "apt-get install -y dataset-fashion-mnist"


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def labels(n: int) -> np.ndarray:
    return (np.arange(n) % 10).astype(np.uint8)


def idx_bytes(array: np.ndarray, tmp_path: Path) -> bytes:
    return write_idx(tmp_path / "scratch.idx", array).read_bytes()


def spec_for(name: str, content: bytes) -> FileSpec:
    return FileSpec(name, len(content), hashlib.sha256(content).hexdigest())


class FakeOpener:
    """Records requested URLs; answers with a fixed payload (or raises)."""

    def __init__(self, payload: bytes = b"", error: Exception | None = None):
        self.payload, self.error, self.urls = payload, error, []

    def __call__(self, url: str):
        self.urls.append(url)
        if self.error is not None:
            raise self.error
        return io.BytesIO(self.payload)


def refuse(url):
    raise AssertionError(f"unexpected download of {url}")


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("array", [images(5), labels(7)], ids=["images", "labels"])
def test_round_trip(tmp_path, suffix, array):
    path = write_idx(tmp_path / f"a-idx{suffix}", array)
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == array.shape
    np.testing.assert_array_equal(out, array)
    assert out.flags.writeable
    raw = gzip.decompress(path.read_bytes()) if suffix else path.read_bytes()
    assert raw[:4] == bytes([0, 0, 8, array.ndim])


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("change, word", [(lambda b: b[:-1], "truncated"),
                                          (lambda b: b + b"\0", "trailing")])
def test_truncated_or_trailing_bytes(tmp_path, suffix, change, word):
    content = change(idx_bytes(images(3), tmp_path))
    path = tmp_path / f"broken-idx3-ubyte{suffix}"
    path.write_bytes(gzip.compress(content) if suffix else content)
    with pytest.raises(DataError, match=word) as info:
        read_idx(path)
    msg = str(info.value)
    assert path.name in msg and str(3 * 28 * 28) in msg and str(3 * 28 * 28 + (1 if word == "trailing" else -1)) in msg


@pytest.mark.parametrize("head", [b"\x01\x00\x08\x01", b"\x00\x00\x0d\x01", b"\x00\x00\x08\x00", b""])
def test_bad_magic(tmp_path, head):
    path = tmp_path / "bad-idx"
    path.write_bytes(head + b"\0\0\0\x02ab" if head else b"")
    with pytest.raises(DataError, match="bad-idx"):
        read_idx(path)


def test_corrupt_and_missing_gzip(tmp_path):
    good = gzip.compress(idx_bytes(labels(100), tmp_path))
    for name, payload in [("garbage.gz", b"not gzip at all"), ("cut.gz", good[: len(good) // 2])]:
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(DataError, match=name):
            read_idx(tmp_path / name)
    with pytest.raises(DataError, match="missing.gz"):
        read_idx(tmp_path / "missing.gz")


def test_verify(tmp_path):
    content = idx_bytes(labels(10), tmp_path)
    path = tmp_path / "x-labels.gz"
    path.write_bytes(gzip.compress(content))
    spec = spec_for("x-labels", content)
    verify(path, spec)  # the decompressed content matches
    np.testing.assert_array_equal(read_idx_verified(path, spec), labels(10))

    bad_hash = FileSpec(spec.name, spec.size, "0" * 64)
    with pytest.raises(DataError) as info:
        verify(path, bad_hash)
    msg = str(info.value)
    assert "sha256" in msg and str(path) in msg and APT in msg and "0" * 64 in msg and spec.sha256 in msg
    with pytest.raises(DataError, match="sha256"):
        read_idx_verified(path, bad_hash)

    with pytest.raises(DataError) as info:
        verify(path, FileSpec(spec.name, spec.size + 1, spec.sha256))
    msg = str(info.value)
    assert "size" in msg and str(path) in msg and APT in msg
    assert str(spec.size + 1) in msg and str(spec.size) in msg


@pytest.fixture
def tiny(tmp_path):
    """A spec for a tiny label file, its .gz bytes, and empty data/system directories."""
    content = idx_bytes(labels(12), tmp_path)
    data_dir, system_dir = tmp_path / "data", tmp_path / "system"
    data_dir.mkdir()
    system_dir.mkdir()
    return spec_for("tiny-labels-idx1-ubyte", content), gzip.compress(content), data_dir, system_dir


def test_find_file_prefers_gz(tiny):
    spec, gz, data_dir, _ = tiny
    assert find_file(data_dir, spec) is None and find_file(None, spec) is None
    (data_dir / spec.name).write_bytes(gzip.decompress(gz))
    assert find_file(data_dir, spec) == data_dir / spec.name
    (data_dir / f"{spec.name}.gz").write_bytes(gz)
    assert find_file(data_dir, spec) == data_dir / f"{spec.name}.gz"


def test_locate_data_dir_wins(tiny):
    spec, gz, data_dir, system_dir = tiny
    for d in (data_dir, system_dir):
        (d / f"{spec.name}.gz").write_bytes(gz)
    assert locate(spec, data_dir, opener=refuse, system_dir=system_dir).parent == data_dir
    assert locate(spec, None, opener=refuse, system_dir=system_dir).parent == system_dir


def test_locate_falls_back_to_system_dir(tiny):
    spec, gz, data_dir, system_dir = tiny
    (system_dir / spec.name).write_bytes(gzip.decompress(gz))
    assert locate(spec, data_dir, opener=refuse, system_dir=system_dir) == system_dir / spec.name


def test_locate_downloads_last(tiny):
    spec, gz, data_dir, system_dir = tiny
    opener = FakeOpener(gz)
    path = locate(spec, data_dir, opener=opener, mirror="http://mirror.invalid/x/", system_dir=system_dir)
    assert opener.urls == [f"http://mirror.invalid/x/{spec.name}.gz"]
    assert path == data_dir / f"{spec.name}.gz" and path.read_bytes() == gz
    assert sorted(p.name for p in data_dir.iterdir()) == [f"{spec.name}.gz"]
    np.testing.assert_array_equal(read_idx_verified(path, spec), labels(12))
    # now present: no second download
    assert locate(spec, data_dir, opener=refuse, system_dir=system_dir) == path


def test_locate_nothing_and_no_download(tiny):
    spec, _, data_dir, system_dir = tiny
    for kwargs in ({"data_dir": data_dir, "download": False}, {"data_dir": None, "download": True}):
        with pytest.raises(DataError) as info:
            locate(spec, opener=refuse, system_dir=system_dir, **kwargs)
        msg = str(info.value)
        assert str(system_dir / spec.name) in msg and APT in msg and "download=True" in msg
        if kwargs["data_dir"] is not None:
            assert str(data_dir / spec.name) in msg


@pytest.mark.parametrize("payload", ["other", "garbage"])
def test_bad_download_leaves_nothing(tiny, tmp_path, payload):
    spec, _, data_dir, system_dir = tiny
    body = gzip.compress(idx_bytes(labels(13), tmp_path)) if payload == "other" else b"<html>"
    opener = FakeOpener(body)
    with pytest.raises(DataError) as info:
        locate(spec, data_dir, opener=opener, mirror="http://m.invalid/", system_dir=system_dir)
    assert f"http://m.invalid/{spec.name}.gz" in str(info.value) and APT in str(info.value)
    assert list(data_dir.iterdir()) == []


def test_download_network_error(tiny):
    spec, _, data_dir, _ = tiny
    opener = FakeOpener(error=urllib.error.URLError("no route to host"))
    with pytest.raises(DataError) as info:
        download(spec, data_dir, mirror="http://m.invalid", opener=opener)
    msg = str(info.value)
    assert f"http://m.invalid/{spec.name}.gz" in msg and "no route to host" in msg and APT in msg
    assert list(data_dir.iterdir()) == []


def test_download_with_urllib_from_local_server(tiny, tmp_path, monkeypatch):
    spec, gz, data_dir, _ = tiny
    served = tmp_path / "served"
    served.mkdir()
    (served / f"{spec.name}.gz").write_bytes(gz)
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        mirror = f"http://127.0.0.1:{server.server_address[1]}/"
        path = download(spec, data_dir, mirror=mirror)
        assert path == data_dir / f"{spec.name}.gz" and path.read_bytes() == gz
        with pytest.raises(DataError, match="404"):
            download(FileSpec("absent", 1, "0" * 64), data_dir, mirror=mirror)
    finally:
        server.shutdown()
        server.server_close()
    assert sorted(p.name for p in data_dir.iterdir()) == [f"{spec.name}.gz"]


def fake_fashion(tmp_path: Path, n_train=20, n_test=10, n_train_labels=None):
    """Write four tiny Fashion-MNIST-like files (mixed .gz and raw) and return their specs."""
    data_dir = tmp_path / "fake"
    data_dir.mkdir()
    arrays = {"train_images": images(n_train, 1), "train_labels": labels(n_train_labels or n_train),
              "test_images": images(n_test, 2), "test_labels": labels(n_test)}
    files = {}
    for i, (key, array) in enumerate(arrays.items()):
        name = f"fake-{key}"
        content = idx_bytes(array, tmp_path)
        files[key] = spec_for(name, content)
        path = data_dir / (name + (".gz" if i % 2 else ""))
        path.write_bytes(gzip.compress(content) if i % 2 else content)
    return data_dir, files, arrays


def test_load_fashion_mnist_fake(tmp_path):
    data_dir, files, arrays = fake_fashion(tmp_path)
    out = load_fashion_mnist(data_dir, download=False, files=files, system_dir=None)
    assert [a.shape for a in out] == [(20, 28, 28), (20,), (10, 28, 28), (10,)]
    assert all(a.dtype == np.uint8 for a in out)
    for a, key in zip(out, ["train_images", "train_labels", "test_images", "test_labels"]):
        np.testing.assert_array_equal(a, arrays[key])


def test_load_fashion_mnist_count_mismatch(tmp_path):
    data_dir, files, _ = fake_fashion(tmp_path, n_train_labels=19)
    with pytest.raises(DataError, match=r"\(20, 28, 28\) and \(19,\)"):
        load_fashion_mnist(data_dir, download=False, files=files, system_dir=None)


def test_load_fashion_mnist_detects_corruption(tmp_path):
    data_dir, files, _ = fake_fashion(tmp_path)
    path = data_dir / "fake-train_images"
    content = bytearray(path.read_bytes())
    content[-1] ^= 0xFF
    path.write_bytes(bytes(content))
    with pytest.raises(DataError, match="sha256"):
        load_fashion_mnist(data_dir, download=False, files=files, system_dir=None)
    # without verification the (well-formed) file loads
    out = load_fashion_mnist(data_dir, download=False, files=files, system_dir=None,
                             verify_checksums=False)
    assert out[0].shape == (20, 28, 28)


HAVE_REAL = all(find_file(SYSTEM_DIR, s) is not None for s in FASHION_MNIST_FILES.values())


@pytest.mark.skipif(not HAVE_REAL, reason=f"Fashion-MNIST not installed in {SYSTEM_DIR} "
                    "(apt-get install -y dataset-fashion-mnist)")
def test_real_fashion_mnist():
    x_train, y_train, x_test, y_test = load_fashion_mnist(download=False)
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert {a.dtype for a in (x_train, y_train, x_test, y_test)} == {np.dtype(np.uint8)}
    assert np.bincount(y_train, minlength=10).tolist() == [6000] * 10
    assert np.bincount(y_test, minlength=10).tolist() == [1000] * 10
