"""Choose the ``local_error`` settings on validation anomalies, then report them on the test set.

The settings of the localised reconstruction-error score (residual: squared, absolute, darker,
brighter; Gaussian smoothing sigma in pixels; maximum or top-k % of the map) are picked by AUROC on
*validation* images of the Fashion-5 protocol (all normal) against occluded copies of them made with
another seed (also for ``--anomaly_kind novel_class``: no novel class is shown before the test),
so the test set never chooses them. Every setting's test AUROC / AUPRC is printed next
to it, and everything is written to JSON.

    python benchmarks/local_error.py --ckpt lightning_logs/fashion5_cae/version_0/checkpoints/last.ckpt
    python benchmarks/local_error.py --ckpt <vae.ckpt> --model VAE --anomaly_kind novel_class
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch

from aelab.checkpoint import model_from_checkpoint
from aelab.data import Fashion5DataModule
from aelab.data.datasets import concat
from aelab.data.transforms import occlude
from aelab.evaluation import anomaly_metrics
from aelab.evaluation.compute import score_dataset
from aelab.scoring import attach_scorer
from aelab.scoring.functions import RESIDUALS


def validation_with_occlusions(dm: Fashion5DataModule, fraction: float, seed: int):
    """The validation images (all normal) plus occluded copies of a seeded ``fraction`` of them."""
    images = dm.val_set.images
    generator = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(images), generator=generator)[: max(1, int(fraction * len(images)))]
    damaged = occlude(images[idx], generator, dm.occlusion_size, dm.occlusion_fill)
    n, m = len(images), len(idx)
    normal = (images, dm.val_set.labels, {"anomaly": torch.zeros(n, dtype=torch.long)})
    anomalous = (damaged, dm.val_set.labels[idx], {"anomaly": torch.ones(m, dtype=torch.long)})
    return concat([normal, anomalous], dm.val_set.pad)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="checkpoint of a model trained on the Fashion-5 protocol")
    parser.add_argument("--anomaly_kind", default="occlusion", choices=["occlusion", "novel_class", "both"])
    parser.add_argument("--residuals", nargs="+", default=list(RESIDUALS), choices=list(RESIDUALS))
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0])
    parser.add_argument("--top_ks", type=float, nargs="+", default=[0.0, 2.0])
    parser.add_argument("--val_fraction", type=float, default=0.1, help="validation images that get an occluded copy")
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--seed", type=int, default=42, help="the protocol's seed (splits, test anomalies)")
    parser.add_argument("--out", default="benchmarks/results/local_error.json")
    args = parser.parse_args()

    start = time.process_time()
    model = model_from_checkpoint(args.ckpt)  # the class and hparams the checkpoint records
    scorer = attach_scorer(model)
    dm = Fashion5DataModule(data_dir=args.data_dir, anomaly_kind=args.anomaly_kind, num_anomalies=104,
                            seed=args.seed, pad_to_32=tuple(model.input_shape)[-1] == 32)
    dm.setup("fit")
    sets = {"val": validation_with_occlusions(dm, args.val_fraction, args.seed + 1), "test": dm.test_set}
    rows = []
    with torch.no_grad():
        for residual, sigma, top_k in itertools.product(args.residuals, args.sigmas, args.top_ks):
            row = {"residual": residual, "sigma": sigma, "top_k": top_k}
            for split, data in sets.items():
                settings = {"sigma": sigma, "top_k": top_k, "residual": residual}
                s = score_dataset(scorer, model, data, "local_error", settings, 500, args.seed)
                m = anomaly_metrics(torch.from_numpy(s), data.extras["anomaly"])
                row[f"{split}_auroc"], row[f"{split}_auprc"] = m["auroc"], m["auprc"]
            rows.append(row)
    chosen = max(rows, key=lambda r: (r["val_auroc"], r["val_auprc"]))
    print(f"{'residual':9s} {'sigma':>5s} {'top_k':>5s} | {'val AUROC':>9s} {'val AUPRC':>9s} | "
          f"{'test AUROC':>10s} {'test AUPRC':>10s}")
    for r in rows:
        mark = "  <- chosen on validation" if r is chosen else ""
        print(f"{r['residual']:9s} {r['sigma']:5.1f} {r['top_k']:5.1f} | {r['val_auroc']:9.4f} {r['val_auprc']:9.4f} | "
              f"{r['test_auroc']:10.4f} {r['test_auprc']:10.4f}{mark}")
    result = {"ckpt": args.ckpt, "model": type(model).__name__, "anomaly_kind": args.anomaly_kind,
              "val_fraction": args.val_fraction, "chosen": chosen, "rows": rows,
              "cpu_seconds": time.process_time() - start}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
