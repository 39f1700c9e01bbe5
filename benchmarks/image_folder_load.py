"""How long an image folder takes to load: cold (every file decoded, in ``--num_workers`` processes) and warm
(a fresh :class:`aelab.data.sources.ImageFolder` reading the disk cache the cold load wrote).

The default folder is Caltech-101 (``../shared/data/caltech101/101_ObjectCategories``, 102 class folders,
9,145 images) at 96x96 RGB, the published notebook's setting. The cache goes to an empty temporary folder,
so the cold load really decodes; the image files themselves may already sit in the OS page cache (this
script does not drop it). Targets on a 2-core machine: cold <= 30 s, warm <= 3 s. Prints a table and
writes ``benchmarks/results/image_folder_load.json``.

    python benchmarks/image_folder_load.py
    python benchmarks/image_folder_load.py --image_size 64 --resize center_crop --num_workers 4
    python benchmarks/image_folder_load.py --root ~/photos --output /tmp/photos_load.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from aelab.data.sources.folder import ImageFolder

HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = HERE.parents[1] / "shared" / "data" / "caltech101" / "101_ObjectCategories"


def timed_load(root: str, cache_dir: str, args: argparse.Namespace) -> tuple[float, int, tuple[int, ...]]:
    """Seconds to load ``root`` with a fresh ImageFolder, the number of images and the array shape."""
    source = ImageFolder(root, image_size=args.image_size, channels=args.channels, resize=args.resize,
                         cache_dir=cache_dir, num_workers=args.num_workers)
    start = time.perf_counter()
    data = source.load()
    return time.perf_counter() - start, len(data), tuple(data.images.shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(DEFAULT_ROOT), help="the image folder (default: Caltech-101)")
    parser.add_argument("--image_size", type=int, default=96)
    parser.add_argument("--channels", type=int, default=3, choices=(1, 3))
    parser.add_argument("--resize", default="stretch", choices=("stretch", "center_crop", "pad"))
    parser.add_argument("--num_workers", type=int, default=2, help="decoding processes of the cold load")
    parser.add_argument("--output", default=str(HERE / "results" / "image_folder_load.json"))
    args = parser.parse_args()
    if not Path(args.root).is_dir():
        raise SystemExit(f"{args.root}: no such folder (Caltech-101 is expected in ../shared/data, see DATA.md; "
                         "or pass --root)")

    with tempfile.TemporaryDirectory(prefix="aelab-bench-cache-") as cache_dir:
        cold, n, shape = timed_load(args.root, cache_dir, args)
        warm, n_warm, _ = timed_load(args.root, cache_dir, args)
        cache_bytes = sum(p.stat().st_size for p in Path(cache_dir).glob("*.npz"))
    assert n_warm == n, "the warm load found other images than the cold one"

    result = {
        "root": str(args.root), "files": n, "shape": list(shape), "resize": args.resize,
        "num_workers": args.num_workers, "cold_s": round(cold, 2), "warm_s": round(warm, 3),
        "cold_images_per_s": round(n / cold, 1), "warm_images_per_s": round(n / warm, 1),
        "cache_mb": round(cache_bytes / 2**20, 1), "cpu_count": os.cpu_count(),
        "targets": {"cold_s": 30, "warm_s": 3},
        "meets_targets": cold <= 30 and warm <= 3,
        "python": platform.python_version(), "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    rows = [("load", "files", "seconds", "images/s"), ("cold (decode)", n, f"{cold:.2f}", f"{n / cold:.0f}"),
            ("warm (cache)", n, f"{warm:.3f}", f"{n / warm:.0f}")]
    print(f"\n{args.root}: {'x'.join(map(str, shape[1:]))}, resize={args.resize}, {args.num_workers} workers, "
          f"cache {result['cache_mb']} MB")
    for row in rows:
        print(f"{row[0]:<14} {row[1]:>6} {row[2]:>8} {row[3]:>9}")
    print(f"targets: cold <= 30 s, warm <= 3 s: {'met' if result['meets_targets'] else 'NOT met'}")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
