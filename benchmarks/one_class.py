"""One-class novelty detection on Fashion-MNIST (Ruff et al. 2018; Golan & El-Yaniv 2018).

For every class k: train a CAE and a VAE (by default with the encoder's transformation-prediction
head, ``transform_weight`` 1: see :mod:`aelab.models.transform_head`) on the training images of class k alone, score the whole
10,000-image test set (the nine other classes are anomalies) with every applicable anomaly score,
and report the AUROC per class and the mean over classes. Prints a table and writes JSON.

    python benchmarks/one_class.py                         # all 10 classes, CAE and VAE (15 epochs each)
    python benchmarks/one_class.py --transform_weight 0 --no-batch_norm --epochs 8   # session-1 baseline
    python benchmarks/one_class.py --classes 0 7 --epochs 3 --models CAE   # a quick look
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch

from aelab.data import CLASS_NAMES, OneClassDataModule
from aelab.evaluation import anomaly_metrics
from aelab import models
from aelab.evaluation.compute import score_dataset
from aelab.scoring import applicable_scores, attach_scorer
from aelab.scoring.calibrate import fit_stats

ARCHITECTURE = dict(channels=16, latent_dim=16, hidden_dim=128, scheduler="onecycle", log_images=0)
EXTRA = {"VAE": dict(kl_warmup_epochs=2)}
SETTINGS = {"neg_elbo_k": {"k": 4}, "recon_prob": {"k": 4}, "iwae": {"k": 8}, "complexity": {"k": 4}}


def run_class(name: str, k: int, epochs: int, data_dir: str | None, seed: int, transform_weight: float,
              batch_norm: bool) -> dict:
    pl.seed_everything(seed, workers=True)
    dm = OneClassDataModule(normal_classes=[k], data_dir=data_dir, batch_size=128, seed=seed)
    model = getattr(models, name)(**ARCHITECTURE, **EXTRA.get(name, {}), transform_weight=transform_weight,
                                  batch_norm=batch_norm)
    start = time.process_time()
    pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False, deterministic=False).fit(model, dm)
    train_cpu = time.process_time() - start
    model.eval()
    scorer = attach_scorer(model)
    fit_stats(scorer, model, dm.train_set, seed=seed)
    labels = dm.test_set.extras["anomaly"]
    aurocs = {}
    for method in applicable_scores(model):
        settings = scorer.settings_for(method, SETTINGS.get(method))
        s = score_dataset(scorer, model, dm.test_set, method, settings, batch_size=500, seed=seed)
        aurocs[method] = anomaly_metrics(torch.from_numpy(s), labels)["auroc"]
    return {"auroc": aurocs, "train_cpu_s": train_cpu, "total_cpu_s": time.process_time() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--models", nargs="+", default=["CAE", "VAE"], choices=["CAE", "VAE"])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--transform_weight", type=float, default=1.0,
                        help="weight of the encoder's rotation/shift-prediction loss (0: plain autoencoders, "
                             "no `transform` score)")
    parser.add_argument("--batch_norm", action=argparse.BooleanOptionalAction, default=True,
                        help="BatchNorm in the encoders and decoders (default: on)")
    parser.add_argument("--output", default="benchmarks/results/one_class_transform_e15.json")
    args = parser.parse_args()

    results: dict = {"epochs": args.epochs, "seed": args.seed, "transform_weight": args.transform_weight,
                     "batch_norm": args.batch_norm,
                     "torch_threads": torch.get_num_threads(), "models": {}}
    for name in args.models:
        per_class = {}
        for k in args.classes:
            per_class[CLASS_NAMES[k]] = r = run_class(name, k, args.epochs, args.data_dir, args.seed,
                                                         args.transform_weight, args.batch_norm)
            best = max(r["auroc"], key=r["auroc"].get)
            print(f"{name} {CLASS_NAMES[k]:<12} " + " ".join(f"{m}={v:.3f}" for m, v in r["auroc"].items())
                  + f"  (train {r['train_cpu_s']:.0f} CPU s; best {best})", flush=True)
        scores = list(next(iter(per_class.values()))["auroc"])
        mean = {m: float(np.mean([r["auroc"][m] for r in per_class.values()])) for m in scores}
        results["models"][name] = {"per_class": per_class, "mean_auroc": mean,
                                   "cpu_s": float(sum(r["total_cpu_s"] for r in per_class.values()))}

    print("\nMean AUROC over classes", [CLASS_NAMES[k] for k in args.classes])
    for name, r in results["models"].items():
        print(f"{name}: " + "  ".join(f"{m} {v:.4f}" for m, v in sorted(r["mean_auroc"].items(), key=lambda t: -t[1]))
              + f"   ({r['cpu_s']:.0f} CPU s)")
    print("\nPer class (each model's score with the best mean AUROC):")
    best_scores = {n: max(r["mean_auroc"], key=r["mean_auroc"].get) for n, r in results["models"].items()}
    print(f"{'class':<13}" + "".join(f"{n + ' ' + s:>22}" for n, s in best_scores.items()))
    for k in args.classes:
        c = CLASS_NAMES[k]
        print(f"{c:<13}" + "".join(f"{results['models'][n]['per_class'][c]['auroc'][s]:>22.4f}"
                                   for n, s in best_scores.items()))
    print(f"{'mean':<13}" + "".join(f"{results['models'][n]['mean_auroc'][s]:>22.4f}" for n, s in best_scores.items()))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
