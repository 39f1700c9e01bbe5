"""The image-folder source (:class:`aelab.data.sources.ImageFolder`) and the protocols on it: tiny folders
written with Pillow in ``tmp_path``, plus Caltech-101 from ``../shared/data`` when it is there."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import aelab.data.sources.folder as folder_module
from aelab.data import (
    AnomalyDataModule,
    ClassificationDataModule,
    DataError,
    Fashion5DataModule,
    IDXImages,
    ImageFolder,
    ImageFolderDataModule,
)
from aelab.data.sources.folder import scan_folder
from aelab.data.sources.idx import write_idx

CALTECH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "caltech101" / "101_ObjectCategories"

RED, BLUE, GREEN, WHITE = (255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 255, 255)


def write(path: Path, array: np.ndarray, fmt: str | None = None) -> Path:
    """Saves ``array`` ((H, W) grey or (H, W, 3) RGB uint8) with Pillow (format from the suffix unless told)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path, format=fmt)
    return path


def solid(h: int, w: int, colour) -> np.ndarray:
    """An ``h x w`` image of one colour: (H, W) for an int (grey), (H, W, 3) for an RGB tuple."""
    if isinstance(colour, int):
        return np.full((h, w), colour, dtype=np.uint8)
    return np.broadcast_to(np.array(colour, dtype=np.uint8), (h, w, 3)).copy()


def noise(h: int, w: int, seed: int, grey: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(h, w) if grey else (h, w, 3), dtype=np.uint8)


def mixed_folder(root: Path) -> Path:
    """Three classes (sorted case-sensitively: ``Zebra``, ``cat``, ``dog``) of PNG and JPEG, RGB and grey, odd
    sizes, upper-case extensions, a nested folder, a JPEG without extension; and things to ignore: a text
    file, a hidden file, a hidden folder, a text file without extension."""
    write(root / "cat" / "a.png", noise(23, 37, 1))
    write(root / "cat" / "b.JPG", noise(40, 30, 2), "JPEG")
    write(root / "cat" / "c.png", noise(17, 19, 3, grey=True))
    write(root / "cat" / "more" / "d.jpeg", noise(50, 20, 4, grey=True))
    write(root / "dog" / "e.PNG", noise(30, 30, 5), "PNG")
    write(root / "dog" / "f.bmp", noise(12, 9, 6))
    write(root / "dog" / "photo", noise(20, 25, 7), "JPEG")  # no extension: a JPEG by content
    write(root / "Zebra" / "z.gif", noise(16, 16, 8, grey=True), "GIF")
    write(root / "Zebra" / "y.tif", noise(11, 13, 9), "TIFF")
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "dog" / "README").write_text("no extension, not an image")
    write(root / "dog" / ".hidden.png", noise(8, 8, 10))
    write(root / ".thumbnails" / "t.png", noise(8, 8, 11))  # hidden folder: not a class
    return root


def class_folder(root: Path, counts: dict[str, int], size: int = 12) -> Path:
    """One PNG per image, each a different flat grey level (so an image is known by its pixels)."""
    k = 0
    for name, n in counts.items():
        for i in range(n):
            k += 1
            write(root / name / f"img_{i:03d}.png", solid(size, size + 3, (k * 3) % 256))
    return root


def keys(images: torch.Tensor) -> set[int]:
    """The grey level of each flat image (one per image; identifies it)."""
    return {int(v) for v in images[:, 0, 0, 0].tolist()}


# -- layout, scanning, errors ------------------------------------------------------------------------------
def test_classes_counts_order_and_ignored_files(tmp_path, capsys):
    root = mixed_folder(tmp_path / "data")
    data = ImageFolder(str(root), image_size=[10, 14], cache_dir=None, num_workers=0).load()
    assert data.class_names == ("Zebra", "cat", "dog")
    assert data.names == ["Zebra/y.tif", "Zebra/z.gif", "cat/a.png", "cat/b.JPG", "cat/c.png", "cat/more/d.jpeg",
                          "dog/e.PNG", "dog/f.bmp", "dog/photo"]
    assert data.labels.tolist() == [0, 0, 1, 1, 1, 1, 2, 2, 2]
    assert data.images.dtype == torch.uint8 and tuple(data.images.shape) == (9, 3, 10, 14)
    assert data.split is None
    out = capsys.readouterr().out
    line = [ln for ln in out.splitlines() if "images in 3 classes" in ln]
    assert len(line) == 1, out
    assert "3 files ignored: not an image or hidden" in line[0]  # notes.txt, README, .hidden.png
    assert "1 hidden folder skipped" in line[0] and "dog/photo" in line[0]


def test_flat_folder_is_unlabeled(tmp_path, capsys):
    root = tmp_path / "flat"
    for i in range(6):
        write(root / f"im{i}.{'png' if i % 2 else 'JPEG'}", noise(9 + i, 11, i), "PNG" if i % 2 else "JPEG")
    (root / "list.csv").write_text("a,b\n")
    data = ImageFolder(str(root), image_size=8, channels=1, cache_dir=None, num_workers=0).load()
    assert data.class_names == () and data.labels.tolist() == [-1] * 6
    assert tuple(data.images.shape) == (6, 1, 8, 8)
    assert "6 images (flat folder, unlabeled) (1 file ignored" in capsys.readouterr().out
    # the classification protocol on it: every image, label -1, split into disjoint parts
    dm = ClassificationDataModule(ImageFolder(str(root), image_size=8, cache_dir=None, num_workers=0),
                                  val_size=1, test_size=2)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (3, 1, 2)
    assert (dm.test_set.labels == -1).all() and dm.class_names == ()


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="nowhere.*no such folder"):
        ImageFolder(str(tmp_path / "nowhere"), cache_dir=None).load()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    write(empty / ".hidden.png", noise(5, 5, 0))
    with pytest.raises(DataError, match=r"empty: no images found \(accepted: \.jpg, \.jpeg, \.png"):
        ImageFolder(str(empty), cache_dir=None).load()
    classes = class_folder(tmp_path / "classes", {"a": 2})
    (classes / "b").mkdir()
    (classes / "b" / "labels.txt").write_text("x")
    with pytest.raises(DataError, match="class folder.* without images: b"):
        ImageFolder(str(classes), cache_dir=None).load()
    with pytest.raises(ValueError, match="on_error must be one of"):
        ImageFolder(str(classes), on_error="ignore")
    with pytest.raises(ValueError, match="resize must be one of"):
        ImageFolder(str(classes), resize="squash")
    with pytest.raises(ValueError, match="channels must be 1"):
        ImageFolder(str(classes), channels=4)


def test_images_directly_in_root_next_to_classes_are_left_out_with_a_warning(tmp_path):
    root = class_folder(tmp_path / "d", {"a": 2, "b": 2})
    write(root / "stray.png", noise(6, 6, 0))
    with pytest.warns(UserWarning, match="1 image directly in the root.*stray.png"):
        data = ImageFolder(str(root), image_size=8, cache_dir=None, num_workers=0).load()
    assert len(data) == 4 and "stray.png" not in data.names


# -- decoding: resize policies and modes -------------------------------------------------------------------
def load_one(tmp_path: Path, array: np.ndarray, **kw) -> torch.Tensor:
    """One image saved as PNG in a flat folder, loaded with ``kw``: ``(C, H, W)`` uint8."""
    root = tmp_path / f"one_{len(list(tmp_path.iterdir()))}"
    write(root / "x.png", array)
    return ImageFolder(str(root), cache_dir=None, num_workers=0, **kw).load().images[0]


def test_pad_keeps_aspect_ratio_with_black_bars(tmp_path):
    x = load_one(tmp_path, solid(20, 40, WHITE), image_size=20, resize="pad")  # 40 wide, 20 high
    assert tuple(x.shape) == (3, 20, 20)
    assert (x[:, :4] == 0).all() and (x[:, -4:] == 0).all()  # black rows at top and bottom
    assert (x[:, 6:14] == 255).all()  # the image (20x10) in the middle
    tall = load_one(tmp_path, solid(40, 20, WHITE), image_size=20, resize="pad")
    assert (tall[:, :, :4] == 0).all() and (tall[:, :, 6:14] == 255).all()  # bars left and right


def test_center_crop_keeps_the_middle(tmp_path):
    img = np.concatenate([solid(40, 40, RED), solid(40, 40, BLUE)], axis=1)  # 80 wide: left red, right blue
    x = load_one(tmp_path, img, image_size=20, resize="center_crop")
    assert tuple(x.shape) == (3, 20, 20)
    # scaled to 40x20, the middle 20 columns kept: columns 0-9 red, 10-19 blue
    assert x[:, 10, 2].tolist() == [255, 0, 0] and x[:, 10, 17].tolist() == [0, 0, 255]
    assert x[:, 0, 0].tolist() == [255, 0, 0] and x[:, 19, 19].tolist() == [0, 0, 255]


def test_stretch_ignores_aspect_ratio_and_keeps_corners(tmp_path):
    img = np.zeros((23, 37, 3), dtype=np.uint8)
    img[:11, :18], img[:11, 18:], img[11:, :18], img[11:, 18:] = RED, GREEN, BLUE, WHITE
    x = load_one(tmp_path, img, image_size=[16, 12], resize="stretch")
    assert tuple(x.shape) == (3, 16, 12)
    assert x[:, 0, 0].tolist() == [255, 0, 0] and x[:, 0, -1].tolist() == [0, 255, 0]
    assert x[:, -1, 0].tolist() == [0, 0, 255] and x[:, -1, -1].tolist() == [255, 255, 255]
    wide = load_one(tmp_path, solid(20, 40, WHITE), image_size=20, resize="stretch")
    assert (wide == 255).all()  # no bars: the whole square is image


def test_grey_and_rgb_conversion(tmp_path):
    grey = load_one(tmp_path, solid(9, 7, 100), image_size=4, channels=3)
    assert tuple(grey.shape) == (3, 4, 4) and (grey == 100).all()  # grey repeated in R, G, B
    red = load_one(tmp_path, solid(9, 7, RED), image_size=4, channels=1)
    assert tuple(red.shape) == (1, 4, 4) and (red == 76).all()  # Pillow's L: 299/1000 * 255


def test_parallel_decoding_equals_in_process(tmp_path):
    root = mixed_folder(tmp_path / "data")
    serial = ImageFolder(str(root), image_size=9, cache_dir=None, num_workers=0).load()
    parallel = ImageFolder(str(root), image_size=9, cache_dir=None, num_workers=2).load()
    assert parallel.names == serial.names and torch.equal(parallel.images, serial.images)
    assert torch.equal(parallel.labels, serial.labels)


def test_read_files_decodes_like_the_folder(tmp_path):
    root = mixed_folder(tmp_path / "data")
    source = ImageFolder(str(root), image_size=[6, 5], channels=1, resize="pad", cache_dir=None, num_workers=0)
    data = source.load()
    again = source.read_files([root / "cat" / "b.JPG", root / "dog" / "photo"])
    assert source.input_shape == (1, 6, 5) and tuple(again.shape) == (2, 1, 6, 5)
    assert torch.equal(again, data.images[[3, 8]])
    assert "image folder" in source.describe()


# -- undecodable files ---------------------------------------------------------------------------------------
def with_corrupt_file(root: Path) -> Path:
    class_folder(root, {"a": 3, "b": 3})
    (root / "b" / "broken.png").write_bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes())
    return root


@pytest.mark.parametrize("workers", [0, 2])
def test_on_error_raise_names_the_file(tmp_path, workers):
    root = with_corrupt_file(tmp_path / "d")
    with pytest.raises(DataError, match=r"broken\.png: cannot decode image"):
        ImageFolder(str(root), image_size=8, cache_dir=None, num_workers=workers).load()


def test_on_error_skip_warns_and_leaves_the_file_out_also_from_the_cache(tmp_path):
    root = with_corrupt_file(tmp_path / "d")
    cache = tmp_path / "cache"
    with pytest.warns(UserWarning, match=r"1 file could not be decoded.*b/broken\.png"):
        data = ImageFolder(str(root), image_size=8, cache_dir=str(cache), num_workers=0, on_error="skip").load()
    assert len(data) == 6 and "b/broken.png" not in data.names and data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.warns(UserWarning, match=r"b/broken\.png"):  # the cache remembers it: never silent
        again = ImageFolder(str(root), image_size=8, cache_dir=str(cache), num_workers=0, on_error="skip").load()
    assert torch.equal(again.images, data.images)
    with pytest.raises(DataError, match=r"broken\.png"):  # and on_error="raise" still raises
        ImageFolder(str(root), image_size=8, cache_dir=str(cache), num_workers=0).load()


# -- disk cache ----------------------------------------------------------------------------------------------
def forbid_decoding(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("decoded although the cache is valid")

    monkeypatch.setattr(folder_module, "decode_image", fail)
    monkeypatch.setattr(folder_module, "_decode_chunk", fail)


def count_decoding(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = folder_module.decode_image

    def counting(path, *args, **kwargs):
        calls.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(folder_module, "decode_image", counting)
    return calls


def test_cache_hit_does_not_decode_and_load_is_memoized(tmp_path, monkeypatch, capsys):
    root = mixed_folder(tmp_path / "data")
    cache = tmp_path / "cache"
    first = ImageFolder(str(root), image_size=8, cache_dir=str(cache), num_workers=0).load()
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"
    assert not list(cache.glob(".*"))  # no temporary file left behind
    forbid_decoding(monkeypatch)
    source = ImageFolder(str(root), image_size=8, cache_dir=str(cache), num_workers=0)
    second = source.load()
    assert "read from cache" in capsys.readouterr().out
    assert torch.equal(first.images, second.images) and first.names == second.names
    assert torch.equal(first.labels, second.labels) and first.class_names == second.class_names
    assert source.load() is second  # memoized: no scan, no disk


def test_cache_invalidation(tmp_path, monkeypatch):
    root = class_folder(tmp_path / "d", {"a": 3, "b": 2})
    cache = tmp_path / "cache"

    def load(**kw):
        return ImageFolder(str(root), **{"image_size": 8, "cache_dir": str(cache), "num_workers": 0, **kw}).load()

    before = load()
    calls = count_decoding(monkeypatch)
    load()
    assert calls == []
    # rewriting one file (new content and mtime): a new key, re-decoded
    target = root / "a" / "img_001.png"
    write(target, solid(12, 15, 201))
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
    changed = load()
    assert len(calls) == 5 and int(changed.images[1, 0, 0, 0]) == 201
    assert not torch.equal(changed.images, before.images)
    assert len(list(cache.glob("*.npz"))) == 1  # the stale file of this folder and settings is deleted
    # only touching a file (same bytes, new mtime) also invalidates
    calls.clear()
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
    load()
    assert len(calls) == 5
    # another setting: another cache file
    calls.clear()
    assert tuple(load(image_size=6).images.shape) == (5, 3, 6, 6) and len(calls) == 5
    calls.clear()
    assert tuple(load(resize="pad").images.shape) == (5, 3, 8, 8) and len(calls) == 5
    # added and removed files
    calls.clear()
    write(root / "b" / "img_new.png", solid(12, 15, 99))
    assert len(load()) == 6 and len(calls) == 6
    calls.clear()
    (root / "a" / "img_000.png").unlink()
    assert len(load()) == 5 and len(calls) == 5


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped_byte", "wrong_content"])
def test_corrupt_cache_is_ignored_with_a_warning_and_rebuilt(tmp_path, damage):
    root = class_folder(tmp_path / "d", {"a": 2, "b": 2})
    cache = tmp_path / "cache"
    good = ImageFolder(str(root), image_size=8, cache_dir=str(cache), num_workers=0).load()
    (path,) = cache.glob("*.npz")
    if damage == "garbage":
        path.write_bytes(b"this is not a zip file")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:-100])
    elif damage == "flipped_byte":  # one pixel changed on disk: the zip CRC-32 catches it
        raw = bytearray(path.read_bytes())
        at = raw.find(bytes([3] * 64))  # the first image, a flat grey 3
        assert at > 0
        raw[at + 10] ^= 0xFF
        path.write_bytes(bytes(raw))
    else:  # a readable file of the wrong shape under this name: never trusted
        np.savez(path, images=np.zeros((1, 3, 8, 8), np.uint8), labels=np.zeros(1, np.int64),
                 meta=np.frombuffer(b'{"failed": []}', dtype=np.uint8))
    with pytest.warns(UserWarning, match="cache file .* ignored"):
        rebuilt = ImageFolder(str(root), image_size=8, cache_dir=str(cache), num_workers=0).load()
    assert torch.equal(rebuilt.images, good.images)
    with np.load(path) as data:  # rewritten and valid again
        assert data["images"].shape == (4, 3, 8, 8)


# -- protocols on a folder -----------------------------------------------------------------------------------
COUNTS = {"a": 10, "b": 10, "c": 10}


def test_image_folder_datamodule_splits_are_seeded_and_disjoint(tmp_path):
    root = class_folder(tmp_path / "d", COUNTS)

    def parts(seed: int):
        dm = ImageFolderDataModule(str(root), image_size=8, cache_dir=str(tmp_path / "cache"), decode_workers=0,
                                   val_size=0.2, test_size=0.3, seed=seed)
        dm.setup()
        return dm, [keys(s.images) for s in (dm.train_set, dm.val_set, dm.test_set)]

    dm, (train, val, test) = parts(0)
    assert dm.class_names == ("a", "b", "c") and dm.input_shape == (3, 8, 8)
    # per class of 10: 3 test (30 %), then 1 of the other 7 for validation (20 %, rounded)
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (18, 3, 9)
    assert len(train) == 18 and len(val) == 3 and len(test) == 9  # flat images: one distinct grey level each
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(train | val | test) == 30
    assert len(set(dm.test_set.names)) == 9 and all(n.split("/")[0] in COUNTS for n in dm.test_set.names)
    assert torch.bincount(dm.test_set.labels).tolist() == [3, 3, 3]  # per class: 30 % test
    assert parts(0)[1] == [train, val, test]  # same seed, same split
    assert parts(1)[1] != [train, val, test]


def test_classification_datamodule_on_a_folder_source_selects_classes(tmp_path):
    root = class_folder(tmp_path / "d", COUNTS)
    dm = ClassificationDataModule(ImageFolder(str(root), image_size=8, cache_dir=None, num_workers=0),
                                  classes=["c", "a"], val_size=2, test_size=3)
    dm.setup()
    assert dm.class_names == ("c", "a")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (10, 4, 6)
    assert all(n.startswith(("a/", "c/")) for n in dm.test_set.names)
    assert dm.test_set.labels.tolist() == [1, 1, 1, 0, 0, 0]  # a -> 1, c -> 0 (the given order)


def test_anomaly_datamodule_on_a_folder(tmp_path):
    root = class_folder(tmp_path / "d", COUNTS)
    dm = AnomalyDataModule(source=ImageFolder(str(root), image_size=8, cache_dir=None, num_workers=0),
                           normal_classes=["b"], val_size=2, test_size=0.3)
    dm.setup()
    test = dm.test_set
    normal = test.extras["anomaly"] == 0
    # test = the 3 held-out normal images + every image of the other classes (20)
    assert len(test) == 3 + 20 and int(normal.sum()) == 3
    assert (test.extras["anomaly_type"][~normal] == 2).all() and (test.labels[~normal] == -1).all()
    train, val = keys(dm.train_set.images), keys(dm.val_set.images)
    assert len(train) == 5 and len(val) == 2
    assert not (keys(test.images[normal]) & (train | val))  # held-out normals were never trained on
    everything = keys(ImageFolder(str(root), image_size=8, cache_dir=None, num_workers=0).load().images)
    assert keys(test.images[~normal]) | train | val | keys(test.images[normal]) == everything


def test_fashion5_protocol_on_a_folder(tmp_path):
    root = class_folder(tmp_path / "d", {"a": 20, "b": 20, "c": 10})
    source = ImageFolder(str(root), image_size=8, channels=1, cache_dir=None, num_workers=0)
    dm = Fashion5DataModule(source=source, normal_classes=["a", "b"], anomaly_kind="both", num_unlabeled=0.5,
                            num_labeled=0.25, num_test_normal=0.5, num_anomalies=3, test_size=0.2)
    dm.setup()
    # training part: 16 + 16 images; 16 unlabeled and 8 labeled drawn, 20 % of each for validation
    assert (len(dm.train_set), len(dm.val_set)) == (13 + 6, 3 + 2)
    assert int(dm.train_set.extras["labeled"].sum()) == 6 and len(dm.labeled_val_set) == 2
    kinds = dm.test_set.extras["anomaly_type"]
    assert len(dm.test_set) == 4 + 3 + 3  # half of the 8 normal test images, 3 occluded, 3 novel-class
    assert int((kinds == 0).sum()) == 4 and int((kinds == 1).sum()) == 3 and int((kinds == 2).sum()) == 3
    assert dm.input_shape == (1, 8, 8) and dm.class_names == ("a", "b")


def test_ood_idx_images_are_converted_to_the_folder_shape(tmp_path):
    root = class_folder(tmp_path / "d", {"a": 10, "b": 5})
    ood_file = write_idx(tmp_path / "ood-images-idx3-ubyte", np.full((4, 28, 28), 200, dtype=np.uint8))
    dm = AnomalyDataModule(source=ImageFolder(str(root), image_size=[10, 12], cache_dir=None, num_workers=0),
                           normal_classes=["a"], anomaly_kind="ood", ood=IDXImages(str(ood_file)), val_size=2,
                           test_size=0.2)
    dm.setup()
    test = dm.test_set
    ood = test.extras["anomaly_type"] == 3
    assert int(ood.sum()) == 4 and len(test) == 2 + 4  # 2 normal test images + the OOD images, no novel class
    assert tuple(test.images.shape[1:]) == (3, 10, 12)  # grey 28x28 -> RGB 10x12
    assert (test.images[ood] == 200).all() and (test.extras["anomaly"][ood] == 1).all()


# -- the real Caltech-101 folder -----------------------------------------------------------------------------
@pytest.mark.skipif(not CALTECH.is_dir(), reason=f"Caltech-101 not found at {CALTECH} (see DATA.md)")
def test_caltech101_folder(tmp_path):
    scan = scan_folder(CALTECH)
    assert len(scan.class_names) == 102 and len(scan.names) == 9_145
    assert scan.sniffed == ["BACKGROUND_Google/tmp"] and not scan.ignored  # the JPEG without extension counts
    # a full load at 16x16 (JPEG draft decoding at 1/8 scale makes it quick), then from the cache
    source = ImageFolder(str(CALTECH), image_size=16, cache_dir=str(tmp_path / "cache"), num_workers=2)
    data = source.load()
    assert tuple(data.images.shape) == (9_145, 3, 16, 16)
    counts = dict(zip(data.class_names, torch.bincount(data.labels).tolist()))
    assert counts["airplanes"] == 800 and counts["Motorbikes"] == 798 and counts["BACKGROUND_Google"] == 468
    assert counts["Faces"] == counts["Faces_easy"] == 435 and min(counts.values()) == 31
    again = ImageFolder(str(CALTECH), image_size=16, cache_dir=str(tmp_path / "cache"), num_workers=2).load()
    assert torch.equal(again.images, data.images) and again.names == data.names
