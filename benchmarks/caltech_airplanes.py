"""The Caltech-101 airplane anomaly protocol (../shared/data/DATA.md), measured soundly.

`airplanes` is the normal class; a seeded per-class split holds out ``test_size`` of the airplanes
(never trained on) and the test set is those plus *every* other image (8,345 files: the 8,344 of the
study plus ``BACKGROUND_Google/tmp``, a JPEG). For each model (the autoencoder, the VAE and the beta-VAE
of the study, and any variant given with ``--set``) and each training seed, on one fixed split:

* every applicable anomaly score (``aelab.scoring``): AUROC, AUPRC with the anomalies as the positive
  class (at 98 % anomalies nearly free) and AUPRC with the *airplanes* as the positive class;
* the study's fixed threshold sweep on the per-pixel MSE (0.01 ... 0.05: accuracy, precision, recall,
  F1, TP / FP / TN / FN), on the held-out test set and, for the side-by-side with the published table,
  on all 9,145 images with the training airplanes included (the study's protocol);
* each score's threshold chosen from validation airplanes only (their 95th percentile, by
  ``aelab.scoring.calibrate``), with its confusion matrix on the test set;
* a *validation* AUROC: the validation airplanes against the images of ``--val_classes`` other
  categories drawn with the split seed (up to ``--val_max`` of them): what settings were chosen on. Those
  images are also in the full test set (the protocol tests every image), so the *clean* test figures, which
  leave those categories out, are reported next to the full ones: nothing was chosen on them.
  (``--proxy_n`` adds CelebA faces as a second validation set; they proved too easy to tell settings apart.)

Everything goes through the package: ``AnomalyDataModule`` + ``ImageFolder``, ``CAE`` / ``VAE`` trained by
a Lightning ``Trainer``, ``Scorer`` + ``calibrate`` (latent statistics on the training airplanes,
threshold on the validation airplanes), ``aelab.evaluation.compute.score_metrics`` /
``aelab.evaluation.metrics`` / ``aelab.evaluation.thresholds`` for AUROC, AUPRC and confusion matrices.
Prints a table (mean +- sd over seeds) next to the published one and writes JSON.

    python benchmarks/caltech_airplanes.py                       # the recorded run: 4 models x 3 seeds, stretch
    python benchmarks/caltech_airplanes.py --resize pad --seeds 0 --out benchmarks/results/caltech_airplanes_pad.json
    python benchmarks/caltech_airplanes.py --models AEhead --seeds 0 --epochs 5 --out /tmp/quick.json   # a quick look
    python benchmarks/caltech_airplanes.py --models AEhead --set AEhead.denoise_erasing=0.5 --seeds 0   # a variant

Run it from the repository root (the data path is relative to it). One thread per job is how it was
measured: ``OMP_NUM_THREADS=1``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch

from aelab.data import AnomalyDataModule, ImageFolder
from aelab.data.datasets import InMemoryDataset
from aelab.evaluation.compute import score_metrics
from aelab.evaluation.metrics import anomaly_metrics
from aelab.evaluation.thresholds import confusion
from aelab.models import CAE, VAE
from aelab.runs import infer
from aelab.scoring import Scorer, applicable_scores, attach_scorer, calibrate

CALTECH = "../shared/data/caltech101/101_ObjectCategories"
CELEBA = "../shared/data/celeba/img_align_celeba"
STUDY_THRESHOLDS = [0.01, 0.02, 0.03, 0.04, 0.05]

# The published table (DATA.md): all 9,144 images, training airplanes included, threshold 0.02 on the MSE.
PUBLISHED = {
    "autoencoder": dict(accuracy=0.9218, precision=0.9759, recall=0.9374, f1=0.9563, tp=7822, fp=193, tn=607, fn=522),
    "VAE": dict(accuracy=0.9128, precision=0.9130, recall=0.9998, f1=0.9544, tp=8342, fp=795, tn=5, fn=2),
    "beta-VAE (beta 1e-4)": dict(accuracy=0.9263, precision=0.9440, recall=0.9772, f1=0.9603, tp=8154, fp=484,
                                 tn=316, fn=190),
}
PUBLISHED_AE_SWEEP_F1 = {0.01: 0.9581, 0.02: 0.9563, 0.03: 0.8829, 0.04: 0.7535, 0.05: 0.5711}

# Shared network: 4 stride-2 stages (96 -> 48 -> 24 -> 12 -> 6), BatchNorm, a bottleneck MLP.
NET = dict(channels=32, num_stages=4, batch_norm=True, hidden_dim=512, latent_dim=64, log_images=0)
PRESETS: dict[str, tuple[type, dict]] = {
    # the recipe (configs/caltech_airplanes_cae.yaml): the autoencoder with the transformation-prediction
    # head (score `transform`)
    "AEhead": (CAE, dict(NET, transform_weight=1.0, lr=1e-3, weight_decay=1e-5, scheduler="onecycle")),
    # the study's plain autoencoder (CAE, per-pixel MSE), same network
    "AE": (CAE, dict(NET, transform_weight=0.0, lr=1e-3, weight_decay=1e-5, scheduler="onecycle")),
    # VAE: Gaussian decoder with a fixed sigma (loss = sum of squared errors / (2 sigma^2) + beta * KL)
    "VAE": (VAE, dict(NET, likelihood="gaussian", sigma=0.1, beta=1.0, kl_warmup_epochs=5, lr=1e-3,
                      scheduler="onecycle")),
    # the study's beta-VAE: beta 1e-4 on the KL next to the (sigma-scaled) squared error
    "BVAE": (VAE, dict(NET, likelihood="gaussian", sigma=0.1, beta=1e-4, kl_warmup_epochs=0, lr=1e-3,
                       scheduler="onecycle")),
}


def parse_value(text: str):
    """``--set`` values: JSON (numbers, true/false, lists, strings in quotes) or a bare string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def model_specs(names: list[str], sets: list[str]) -> dict[str, tuple[type, dict]]:
    """The presets ``names`` with ``--set NAME.key=value`` overrides applied (``NAME`` may be new:
    ``--set AEstretch=AE`` copies a preset under a new name first)."""
    specs = {n: (PRESETS[n][0], dict(PRESETS[n][1])) for n in names if n in PRESETS}
    for item in sets:
        key, value = item.split("=", 1)
        if "." not in key:  # NEW=PRESET
            specs[key] = (PRESETS[value][0], dict(PRESETS[value][1]))
            continue
        name, arg = key.split(".", 1)
        specs[name][1][arg] = parse_value(value)
    return {n: specs[n] for n in names}


def make_source(root: str, size: int, resize: str, cache_dir: str | None) -> ImageFolder:
    return ImageFolder(root, image_size=size, channels=3, resize=resize, cache_dir=cache_dir, num_workers=1)


def proxy_set(n: int, size: int, resize: str, cache_dir: str | None, seed: int) -> InMemoryDataset | None:
    """``n`` CelebA faces (a seeded subset; another data set, never in the test) as validation anomalies."""
    if n <= 0 or not Path(CELEBA).is_dir():
        return None
    images = make_source(CELEBA, size, resize, cache_dir).load().images
    idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return InMemoryDataset(images[idx], torch.full((len(idx),), -1))


def held_out_classes(dm: AnomalyDataModule, k: int, max_images: int, seed: int) -> dict:
    """Validation anomalies without a test label being looked at: ``k`` other categories drawn with
    ``seed``; up to ``max_images`` of their images (a seeded subset) are the validation anomalies, and
    the *clean* test subset is the held-out airplanes plus the images of the other categories only.

    Returns ``{"classes": names, "val_idx": positions in the test set, "clean_mask": (N,) bool}``."""
    data = dm.image_set()
    normal_ids = dm.classes
    is_normal = torch.zeros(len(data.labels), dtype=torch.bool)
    for c in normal_ids:
        is_normal |= data.labels == c
    other_ids = data.labels[~is_normal]  # the test set's anomalies, in source order (AnomalyDataModule)
    test = dm.test_set
    n_normal = int((test.extras["anomaly"] == 0).sum())
    if len(other_ids) != len(test) - n_normal or bool(test.extras["anomaly"][:n_normal].any()):
        raise RuntimeError("unexpected test-set layout: cannot tell the category of each anomaly")
    g = torch.Generator().manual_seed(seed)
    candidates = [c for c in range(len(data.class_names)) if c not in normal_ids]
    chosen = sorted(candidates[i] for i in torch.randperm(len(candidates), generator=g)[:k].tolist())
    in_val = torch.zeros(len(test), dtype=torch.bool)
    in_val[n_normal:] = torch.isin(other_ids, torch.tensor(chosen))
    pool = in_val.nonzero().flatten()
    val_idx = pool[torch.randperm(len(pool), generator=g)[:max_images]].sort().values
    return {"classes": [data.class_names[c] for c in chosen], "val_idx": val_idx, "clean_mask": ~in_val}


def trivial_baselines(dm: AnomalyDataModule, held: dict) -> dict:
    """Scores that use no model: how much the resize policy alone gives away.

    ``black_rows``: |fraction of (near-)black image rows - their median on the training airplanes|
    (with ``pad`` this is the aspect ratio of the photo); ``colour``: Mahalanobis distance of the
    per-channel mean and standard deviation to those of the training airplanes."""
    def black_rows(images):
        return ((images.float() / 255).amax(dim=(1, 3)) < 0.01).float().mean(1)

    def colour(images):
        x = images.float() / 255
        return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1).double()

    train, test = dm.train_set.images, dm.test_set.images
    y = dm.test_set.extras["anomaly"]
    out = {}
    s = (black_rows(test) - black_rows(train).median()).abs()
    f_train, f_test = colour(train), colour(test)
    cov = torch.cov(f_train.T) + 1e-6 * torch.eye(f_train.shape[1], dtype=torch.float64)
    d = f_test - f_train.mean(0)
    c = torch.einsum("ni,ij,nj->n", d, torch.linalg.inv(cov), d)
    clean = held["clean_mask"]
    for name, scores in (("black_rows", s), ("colour", c)):
        out[name] = {**metrics_both_ways(scores, y), "clean_test": metrics_both_ways(scores[clean], y[clean])}
    return out


def metrics_both_ways(scores: torch.Tensor, labels: torch.Tensor) -> dict:
    """AUROC, AUPRC (anomalies positive) and AUPRC with the normal images as the positive class."""
    m = anomaly_metrics(scores, labels)
    return {"auroc": m["auroc"], "auprc": m["auprc"],
            "auprc_normal": anomaly_metrics(-torch.as_tensor(scores, dtype=torch.float64), 1 - labels)["auprc"]}


def train(model_cls, kwargs: dict, dm: AnomalyDataModule, epochs: int, seed: int):
    pl.seed_everything(seed, workers=True)
    model = model_cls(input_shape=dm.input_shape, **kwargs)
    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", devices=1, num_sanity_val_steps=0)
    cpu, wall = time.process_time(), time.perf_counter()
    trainer.fit(model, dm)
    info = {"train_cpu_s": time.process_time() - cpu, "train_wall_s": time.perf_counter() - wall,
            "val_loss": float(trainer.callback_metrics.get("val_loss", float("nan"))),
            "train_loss": float(trainer.callback_metrics.get("train_loss", float("nan")))}
    return model.eval(), info


def evaluate(model, dm: AnomalyDataModule, proxy: InMemoryDataset | None, held: dict, seed: int, settings: dict,
             scores: list[str] | None, q: float) -> dict:
    """Every applicable score of ``model``: calibrated (latent statistics on the training airplanes,
    threshold = q-th percentile of validation airplanes), then measured on the test set."""
    test, y = dm.test_set, dm.test_set.extras["anomaly"]
    labels = y.numpy()
    names = [n for n in applicable_scores(model) if scores is None or n in scores]
    out = {}
    for name in names:
        cpu = time.process_time()
        scorer = attach_scorer(model, Scorer(score=name, settings=settings.get(name), threshold="percentile",
                                             threshold_value=q))
        threshold = calibrate(scorer, model, dm.train_set, dm.normal_val_set, batch_size=250, seed=seed)

        def run(dataset, scorer=scorer):
            torch.manual_seed(seed)
            return infer(lambda x: scorer(model, x).double(), dataset, 250)

        s_test = run(test)
        r = score_metrics(s_test.numpy(), labels, (f"val_p{q:g}", threshold))
        r.pop("sweep")  # quantile sweep: not needed here (the study's fixed sweep is below)
        r["auprc_normal"] = anomaly_metrics(-s_test, 1 - y)["auprc"]
        r["settings"] = scorer.settings_for(name)
        # validation: validation airplanes against the images of the held-out categories (never chosen on
        # the other categories); clean: the test set without those categories
        s_val_normal = run(dm.normal_val_set)
        s_val = torch.cat([s_val_normal, s_test[held["val_idx"]]])
        y_val = torch.cat([torch.zeros(len(s_val_normal)), torch.ones(len(held["val_idx"]))]).long()
        r["val_auroc"] = anomaly_metrics(s_val, y_val)["auroc"]
        r["val_auprc_normal"] = anomaly_metrics(-s_val, 1 - y_val)["auprc"]
        clean = held["clean_mask"]
        r["clean_test"] = metrics_both_ways(s_test[clean], y[clean])
        if proxy is not None:  # validation: validation airplanes (normal) against CelebA faces
            s_val = torch.cat([s_val_normal, run(proxy)])
            y_val = torch.cat([torch.zeros(len(dm.normal_val_set)), torch.ones(len(proxy))]).long()
            r["val_proxy_auroc"] = anomaly_metrics(s_val, y_val)["auroc"]
        if name == "mse":
            r["study_sweep_test"] = [confusion(s_test, y, t) for t in STUDY_THRESHOLDS]
            # the study's protocol: all images, the training and validation airplanes included
            s_all = torch.cat([s_test, run(dm.train_set), run(dm.val_set)])
            y_all = torch.cat([y, torch.zeros(len(dm.train_set) + len(dm.val_set), dtype=torch.long)])
            r["study_sweep_all_images"] = [confusion(s_all, y_all, t) for t in STUDY_THRESHOLDS]
            r["val_p95_all_images"] = confusion(s_all, y_all, threshold)
        r["cpu_s"] = time.process_time() - cpu
        out[name] = r
        print(f"    {name:<12} AUROC {r['auroc']:.4f}  AUPRC {r['auprc']:.4f}  AUPRC(airplanes) "
              f"{r['auprc_normal']:.4f}  F1@val_p{q:g} {r['thresholds'][f'val_p{q:g}']['f1']:.4f}"
              + f"  val AUROC {r['val_auroc']:.4f}  clean test AUROC {r['clean_test']['auroc']:.4f}"
              + (f"  CelebA val AUROC {r['val_proxy_auroc']:.4f}" if "val_proxy_auroc" in r else "")
              + f"  ({r['cpu_s']:.0f} CPU s)", flush=True)
    model.scorer = None
    return out


def mean_sd(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def summarise(runs: dict, q: float) -> dict:
    """Mean and sd over seeds of each model x score's figures."""
    key = f"val_p{q:g}"
    summary = {}
    for model, per_seed in runs.items():
        seeds = list(per_seed)
        summary[model] = {}
        for score in per_seed[seeds[0]]["scores"]:
            rows = [per_seed[s]["scores"][score] for s in seeds]
            getters = {"auroc": lambda r: r["auroc"], "auprc": lambda r: r["auprc"],
                       "auprc_normal": lambda r: r["auprc_normal"],
                       "val_auroc": lambda r: r["val_auroc"], "val_auprc_normal": lambda r: r["val_auprc_normal"],
                       "clean_auroc": lambda r: r["clean_test"]["auroc"],
                       "clean_auprc_normal": lambda r: r["clean_test"]["auprc_normal"],
                       "val_proxy_auroc": lambda r: r.get("val_proxy_auroc", math.nan),
                       "best_f1_oracle_f1": lambda r: r["thresholds"]["f1"]["f1"]}
            for m in ("accuracy", "precision", "recall", "f1", "tp", "fp", "tn", "fn"):
                getters[f"{key}_{m}"] = lambda r, m=m: r["thresholds"][key][m]
            entry = {field: mean_sd([get(r) for r in rows]) for field, get in getters.items()}
            if score == "mse":
                for part in ("study_sweep_test", "study_sweep_all_images"):
                    entry[part] = [{m: mean_sd([r[part][i][m] for r in rows])
                                    for m in ("threshold", "accuracy", "precision", "recall", "f1", "tp", "fp", "tn", "fn")}
                                   for i in range(len(STUDY_THRESHOLDS))]
            summary[model][score] = entry
    return summary


def fmt(ms: tuple[float, float], digits: int = 4) -> str:
    return f"{ms[0]:.{digits}f} +- {ms[1]:.{digits}f}"


def print_tables(summary: dict, q: float, n_seeds: int) -> None:
    key = f"val_p{q:g}"
    print(f"\nTest set: held-out airplanes + every other image; mean +- sd over {n_seeds} seed(s)")
    print(f"{'model':<8} {'score':<12} {'AUROC':>17} {'AUPRC(anom)':>17} {'AUPRC(airpl)':>17} "
          f"{'F1@val p' + format(q, 'g'):>17} {'val AUROC':>17} {'clean AUROC':>17}")
    for model, scores in summary.items():
        for score, e in sorted(scores.items(), key=lambda t: -t[1]["auroc"][0]):
            print(f"{model:<8} {score:<12} {fmt(e['auroc']):>17} {fmt(e['auprc']):>17} {fmt(e['auprc_normal']):>17} "
                  f"{fmt(e[key + '_f1']):>17} {fmt(e['val_auroc']):>17} {fmt(e['clean_auroc']):>17}")
    print(f"\nAt the threshold chosen on validation airplanes only ({q:g}th percentile), anomaly = positive:")
    print(f"{'model':<8} {'score':<12} {'accuracy':>8} {'precision':>9} {'recall':>8} {'F1':>8} {'TP':>7} {'FP':>6} "
          f"{'TN':>6} {'FN':>6}")
    for model, scores in summary.items():
        for score, e in scores.items():
            print(f"{model:<8} {score:<12} {e[key + '_accuracy'][0]:8.4f} {e[key + '_precision'][0]:9.4f} "
                  f"{e[key + '_recall'][0]:8.4f} {e[key + '_f1'][0]:8.4f} {e[key + '_tp'][0]:7.1f} "
                  f"{e[key + '_fp'][0]:6.1f} {e[key + '_tn'][0]:6.1f} {e[key + '_fn'][0]:6.1f}")
    print("\nThe study's fixed thresholds on the per-pixel MSE (means over seeds). Test = held-out; all = 9,145 "
          "images with the training airplanes (the study's protocol)")
    print(f"{'model':<8} {'set':<5} {'thr':>5} {'accuracy':>8} {'precision':>9} {'recall':>8} {'F1':>8} {'TP':>7} "
          f"{'FP':>6} {'TN':>6} {'FN':>6}")
    for model, scores in summary.items():
        if "mse" not in scores:
            continue
        for part, tag in (("study_sweep_test", "test"), ("study_sweep_all_images", "all")):
            for row in scores["mse"][part]:
                print(f"{model:<8} {tag:<5} {row['threshold'][0]:5.2f} {row['accuracy'][0]:8.4f} "
                      f"{row['precision'][0]:9.4f} {row['recall'][0]:8.4f} {row['f1'][0]:8.4f} {row['tp'][0]:7.1f} "
                      f"{row['fp'][0]:6.1f} {row['tn'][0]:6.1f} {row['fn'][0]:6.1f}")
    print("\nPublished (all 9,144 images, training airplanes included, threshold 0.02):")
    for model, p in PUBLISHED.items():
        print(f"  {model:<22} " + "  ".join(f"{k} {v}" for k, v in p.items()))
    print("  autoencoder sweep F1: " + ", ".join(f"{t}: {f}" for t, f in PUBLISHED_AE_SWEEP_F1.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["AEhead", "AE", "VAE", "BVAE"])
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME.key=value",
                        help="override a model argument (JSON value), or NEW=PRESET to add a copy of a preset")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    parser.add_argument("--split_seed", type=int, default=42, help="the one split every model and seed uses")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--resize", default="stretch", choices=["pad", "stretch", "center_crop"])
    parser.add_argument("--image_size", type=int, default=96)
    parser.add_argument("--val_size", type=float, default=0.15, help="fraction of the training airplanes")
    parser.add_argument("--test_size", type=float, default=0.2, help="fraction of the airplanes held out")
    parser.add_argument("--threshold_percentile", type=float, default=95.0)
    parser.add_argument("--scores", nargs="*", default=None, help="only these scores (default: all applicable)")
    parser.add_argument("--k_samples", type=int, default=4,
                        help="samples of the sampling scores (neg_elbo_k, iwae, recon_prob, complexity)")
    parser.add_argument("--val_classes", type=int, default=20,
                        help="other categories whose images are the validation anomalies (reported apart: "
                             "the clean test subset leaves them out)")
    parser.add_argument("--val_max", type=int, default=1000, help="at most this many validation anomalies")
    parser.add_argument("--proxy_n", type=int, default=0,
                        help="also report validation airplanes against this many CelebA faces (0: no)")
    parser.add_argument("--cache_dir", default="lightning_logs/.cache/aelab", help="decoded-image cache (git-ignored)")
    parser.add_argument("--out", default="benchmarks/results/caltech_airplanes.json")
    args = parser.parse_args()

    cpu0, wall0 = time.process_time(), time.perf_counter()
    specs = model_specs(args.models, args.set)
    source = make_source(CALTECH, args.image_size, args.resize, args.cache_dir)
    dm = AnomalyDataModule(source, normal_classes=["airplanes"], anomaly_kind="novel_class", val_size=args.val_size,
                           test_size=args.test_size, batch_size=args.batch_size, seed=args.split_seed)
    dm.setup("fit")
    n_anom = int(dm.test_set.extras["anomaly"].sum())
    print(f"split {args.split_seed}: {len(dm.train_set)} training / {len(dm.val_set)} validation airplanes; test "
          f"{len(dm.test_set) - n_anom} airplanes + {n_anom} other images ({args.resize}, {args.image_size}px)")
    proxy = proxy_set(args.proxy_n, args.image_size, args.resize, args.cache_dir, args.split_seed)
    held = held_out_classes(dm, args.val_classes, args.val_max, args.split_seed)
    print(f"validation anomalies: {len(held['val_idx'])} images of {len(held['classes'])} categories "
          f"({', '.join(held['classes'])}); clean test subset: {int(held['clean_mask'].sum())} images")
    baselines = trivial_baselines(dm, held)
    for name, m in baselines.items():
        print(f"no model, {name:<10}: AUROC {m['auroc']:.4f}  AUPRC {m['auprc']:.4f}  AUPRC(airplanes) "
              f"{m['auprc_normal']:.4f}")
    k = args.k_samples
    settings = {"neg_elbo_k": {"k": k}, "iwae": {"k": k}, "recon_prob": {"k": k}, "complexity": {"k": k}}
    runs: dict = {}
    for name, (cls, kwargs) in specs.items():
        runs[name] = {}
        for seed in args.seeds:
            print(f"{name} seed {seed}: {cls.__name__}({kwargs}), {args.epochs} epochs", flush=True)
            model, info = train(cls, kwargs, dm, args.epochs, seed)
            print(f"  trained: {info['train_wall_s']:.0f} s wall, {info['train_cpu_s']:.0f} CPU s, "
                  f"val_loss {info['val_loss']:.5f}", flush=True)
            info["scores"] = evaluate(model, dm, proxy, held, seed, settings, args.scores, args.threshold_percentile)
            runs[name][str(seed)] = info
    summary = summarise(runs, args.threshold_percentile)
    print_tables(summary, args.threshold_percentile, len(args.seeds))
    result = {
        "protocol": {"normal": "airplanes", "resize": args.resize, "image_size": args.image_size,
                     "split_seed": args.split_seed, "val_size": args.val_size, "test_size": args.test_size,
                     "n_train": len(dm.train_set), "n_val": len(dm.val_set),
                     "n_test_normal": len(dm.test_set) - n_anom, "n_test_anomalies": n_anom,
                     "threshold_percentile": args.threshold_percentile, "proxy_celeba_faces": args.proxy_n,
                     "val_classes": held["classes"], "n_val_anomalies": len(held["val_idx"]),
                     "n_clean_test": int(held["clean_mask"].sum()),
                     "k_samples": k},
        "training": {"epochs": args.epochs, "batch_size": args.batch_size, "seeds": args.seeds,
                     "models": {n: {"class": c.__name__, **kw} for n, (c, kw) in specs.items()}},
        "no_model_baselines": baselines, "summary": summary, "runs": runs,
        "published": {"table": PUBLISHED, "autoencoder_sweep_f1": PUBLISHED_AE_SWEEP_F1},
        "cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - wall0,
        "torch_threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "torch": torch.__version__, "python": platform.python_version(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"\n{result['cpu_s']:.0f} CPU s, {result['wall_s']:.0f} s wall; wrote {args.out}")


if __name__ == "__main__":
    main()
