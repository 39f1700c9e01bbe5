"""Out-of-distribution detection: Fashion-MNIST (all 10 classes) against scikit-learn's digits.

A VAE and a CAE are trained on the Fashion-MNIST training images (all ten classes, a seeded 54,000 /
6,000 train / validation split); the test set is the official 10,000 Fashion-MNIST test images (normal)
plus the 1,797 scikit-learn digits upsampled to 28x28 (``aelab.data.SklearnDigits``, light digits on
black like Fashion-MNIST) as out-of-distribution inputs (``OneClassDataModule(anomaly_kind="ood")``), and
a second test set with the digits inverted (dark on light, ``invert: true``). Every applicable score of
each model (``aelab.scoring``): AUROC and AUPRC (OOD = positive class), and the fraction of OOD images
flagged at the 95th percentile of the validation scores (``aelab.scoring.calibrate``).

Nalisnick et al. 2019 (arXiv:1810.09136) found that likelihood models give simpler out-of-distribution
images *higher* likelihood; the ``complexity`` score (Serra et al. 2020, arXiv:1909.11480) subtracts the
PNG length of the input from its code length to correct for it.

    python benchmarks/digits_ood.py                      # VAE and CAE, 5 epochs each, seed 0
    python benchmarks/digits_ood.py --models VAE --epochs 2 --out /tmp/digits.json   # a quick look

Fashion-MNIST comes from ``--data_dir`` or, without files there, the Debian package
(``/usr/share/datasets/fashion-mnist``). One thread per job is how it was measured: ``OMP_NUM_THREADS=1``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import lightning.pytorch as pl
import torch

from aelab.data import OneClassDataModule, SklearnDigits
from aelab.evaluation.compute import score_metrics
from aelab.models import CAE, VAE
from aelab.runs import infer
from aelab.scoring import Scorer, applicable_scores, attach_scorer, calibrate

MODELS = {
    # configs/vae.yaml's VAE: Bernoulli decoder, 10-dimensional code
    "VAE": (VAE, dict(channels=16, latent_dim=10, hidden_dim=256, likelihood="bernoulli", beta=1.0,
                      kl_warmup_epochs=2, lr=1e-3, scheduler="onecycle", log_images=0)),
    # a Gaussian-decoder VAE (fixed sigma 0.1): its -ELBO is a density over grey values
    "VAEgauss": (VAE, dict(channels=16, latent_dim=10, hidden_dim=256, likelihood="gaussian", sigma=0.1, beta=1.0,
                           kl_warmup_epochs=2, lr=1e-3, scheduler="onecycle", log_images=0)),
    # a CAE with the transformation-prediction head (score `transform`)
    "CAE": (CAE, dict(channels=16, latent_dim=16, hidden_dim=128, batch_norm=True, transform_weight=1.0, lr=1e-3,
                      weight_decay=1e-5, scheduler="onecycle", log_images=0)),
}


def datamodule(invert: bool, data_dir: str | None, seed: int, batch_size: int) -> OneClassDataModule:
    return OneClassDataModule(normal_classes=list(range(10)), anomaly_kind="ood",
                              ood=SklearnDigits(image_size=28, channels=1, invert=invert), data_dir=data_dir,
                              val_size=0.1, batch_size=batch_size, seed=seed)


def score_all(model, dm, test_sets: dict, seed: int, settings: dict, q: float) -> dict:
    """Every applicable score: calibrated on the training / validation images, measured on each test set."""
    out: dict = {}
    for name in applicable_scores(model):
        cpu = time.process_time()
        scorer = attach_scorer(model, Scorer(score=name, settings=settings.get(name), threshold="percentile",
                                             threshold_value=q))
        threshold = calibrate(scorer, model, dm.train_set, dm.normal_val_set, batch_size=500, seed=seed)
        out[name] = {"settings": scorer.settings_for(name), "threshold": threshold}
        for tag, test in test_sets.items():
            torch.manual_seed(seed)
            s = infer(lambda x: scorer(model, x).double(), test, 500)
            labels = test.extras["anomaly"].numpy()
            r = score_metrics(s.numpy(), labels, (f"val_p{q:g}", threshold))
            r.pop("sweep")
            normal, ood = s[labels == 0], s[labels == 1]
            r["median_normal"], r["median_ood"] = float(normal.median()), float(ood.median())
            # the fraction of OOD images scored *below* the median normal image (likelier / less anomalous)
            r["ood_below_normal_median"] = float((ood < normal.median()).double().mean())
            out[name][tag] = r
        out[name]["cpu_s"] = time.process_time() - cpu
        print(f"  {name:<12} " + "  ".join(
            f"{tag}: AUROC {out[name][tag]['auroc']:.4f} AUPRC {out[name][tag]['auprc']:.4f} "
            f"flagged@p{q:g} {out[name][tag]['thresholds'][f'val_p{q:g}']['recall']:.3f}" for tag in test_sets)
            + f"  ({out[name]['cpu_s']:.0f} CPU s)", flush=True)
    model.scorer = None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["VAE", "VAEgauss", "CAE"], choices=list(MODELS))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--split_seed", type=int, default=42)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--data_dir", default=None, help="Fashion-MNIST IDX files (default: the Debian package)")
    parser.add_argument("--k_samples", type=int, default=16,
                        help="samples of neg_elbo_k, iwae, recon_prob and complexity")
    parser.add_argument("--threshold_percentile", type=float, default=95.0)
    parser.add_argument("--no_inverted", action="store_true", help="skip the inverted digits")
    parser.add_argument("--out", default="benchmarks/results/digits_ood.json")
    args = parser.parse_args()

    cpu0, wall0 = time.process_time(), time.perf_counter()
    dm = datamodule(False, args.data_dir, args.split_seed, args.batch_size)
    dm.setup("fit")
    test_sets = {"digits": dm.test_set}
    if not args.no_inverted:
        dm_inv = datamodule(True, args.data_dir, args.split_seed, args.batch_size)
        dm_inv.setup("fit")
        test_sets["digits_inverted"] = dm_inv.test_set
    for tag, t in test_sets.items():
        print(f"{tag}: {int((t.extras['anomaly'] == 0).sum())} Fashion-MNIST test images + "
              f"{int(t.extras['anomaly'].sum())} OOD images")
    k = args.k_samples
    settings = {"neg_elbo_k": {"k": k}, "iwae": {"k": k}, "recon_prob": {"k": k}, "complexity": {"k": k}}
    results: dict = {}
    for name in args.models:
        cls, kwargs = MODELS[name]
        pl.seed_everything(args.seed, workers=True)
        model = cls(input_shape=dm.input_shape, **kwargs)
        trainer = pl.Trainer(max_epochs=args.epochs, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1,
                             num_sanity_val_steps=0)
        cpu, wall = time.process_time(), time.perf_counter()
        trainer.fit(model, dm)
        info = {"class": cls.__name__, "args": kwargs, "train_cpu_s": time.process_time() - cpu,
                "train_wall_s": time.perf_counter() - wall,
                "val_loss": float(trainer.callback_metrics.get("val_loss", float("nan")))}
        print(f"{name}: trained {args.epochs} epochs, {info['train_wall_s']:.0f} s wall, {info['train_cpu_s']:.0f} "
              f"CPU s, val_loss {info['val_loss']:.4f}", flush=True)
        info["scores"] = score_all(model.eval(), dm, test_sets, args.seed, settings, args.threshold_percentile)
        results[name] = info

    key = f"val_p{args.threshold_percentile:g}"
    print(f"\n{'model':<9} {'score':<12}" + "".join(f" {tag + ' AUROC':>22} {'AUPRC':>7} {'flagged':>7}"
                                                    for tag in test_sets))
    for name, info in results.items():
        for score, r in sorted(info["scores"].items(), key=lambda t: -t[1]["digits"]["auroc"]):
            print(f"{name:<9} {score:<12}" + "".join(
                f" {r[tag]['auroc']:22.4f} {r[tag]['auprc']:7.4f} {r[tag]['thresholds'][key]['recall']:7.3f}"
                for tag in test_sets))
    result = {"protocol": {"normal": "Fashion-MNIST, all 10 classes", "n_train": len(dm.train_set),
                           "n_val": len(dm.val_set), "test_sets": {t: len(v) for t, v in test_sets.items()},
                           "ood": "scikit-learn digits (1,797, 8x8 upsampled to 28x28)", "split_seed": args.split_seed,
                           "threshold_percentile": args.threshold_percentile, "k_samples": k},
              "training": {"epochs": args.epochs, "seed": args.seed, "batch_size": args.batch_size},
              "models": results, "cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - wall0,
              "torch_threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "torch": torch.__version__, "python": platform.python_version()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"\n{result['cpu_s']:.0f} CPU s, {result['wall_s']:.0f} s wall; wrote {args.out}")


if __name__ == "__main__":
    main()
