"""Credit-card fraud: ways of turning the VAE recipe's per-feature reconstruction residuals into one anomaly
score, side by side on the same trained models (how ``recon_mahalanobis`` was chosen; docs/tables.md).

For every split and seed (as in ``benchmarks/creditcard.py``: the VAE recipe's data section with the split
and seed replaced), the recipe's VAE is trained as ``aelab fit`` trains it (``creditcard.train_aelab``),
and for every row its decoder's mean and log-variance at the posterior mean ``z = mu(x)`` are kept; the
standardised residual is ``r_j = (x_j - mean_j) / sigma_j``. Each variant below is a function of these
arrays whose statistics (if any) are fitted on the **normal training rows only**; no fraud label is used
except to measure. Variants:

* ``recon_nll``: ``sum_j (r_j^2 + log sigma_j^2 + log 2 pi) / 2``, the package's score;
* ``sq_residuals``: ``sum_j r_j^2 / 2`` (the same without the log-variances);
* ``top5_terms``: the sum of the five largest terms of ``recon_nll``;
* ``zscored_terms``: the terms of ``recon_nll``, each z-scored with its mean and sd on the training rows,
  summed;
* ``student_t``: a Student-t per feature (degrees of freedom, location and scale fitted by scipy's
  ``stats.t.fit`` to 20,000 seeded training ``r_j``), ``-log`` density summed;
* ``fisher_tail``: Fisher's method on the per-feature empirical tail probabilities of ``|r_j|`` among the
  training rows, ``-sum_j log((1 + #{train: |r_j| >= |r_j(x)|}) / (n + 1))``;
* ``maha_raw_residual``: the Mahalanobis distance of ``x - mean`` (raw residuals) to the training rows';
* ``maha_inputs``: the Mahalanobis distance of the scaled inputs ``x`` themselves (no network);
* ``recon_mahalanobis``: the package's score (the Mahalanobis distance of ``r``), through the Scorer;
* ``full_gaussian_nll``: half its square plus ``sum_j log sigma_j^2 / 2``: the Gaussian ``-log p(x | z)``
  with covariance ``diag(sigma) S diag(sigma)``, up to a constant.

Metrics as in ``creditcard.py``: test AUROC / AUPRC (fraud = positive), and val AUPRC_w on the labelled
validation set (normal validation rows + the training period's frauds, normal rows weighted to the data's
fraud rate), the selection criterion. Mean +- sd over the seeds, printed and written to JSON. One thread:

    OMP_NUM_THREADS=1 python benchmarks/creditcard_residuals.py                     # both splits, seeds 0 1 2
    OMP_NUM_THREADS=1 python benchmarks/creditcard_residuals.py --splits random --epochs 10 --out /tmp/e10.json
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import creditcard as cc  # the benchmark's data, training and metrics (benchmarks/ is the script's folder)
import numpy as np
import torch
from scipy import stats

from aelab.scoring.calibrate import fit_stats
from aelab.scoring.functions import mahalanobis_distance, recon_nll_per_feature, standardized_residual
from aelab.scoring.training_stats import gaussian_precision

@torch.no_grad()
def decoder_outputs(model, x: torch.Tensor) -> dict[str, np.ndarray]:
    """``x``, the decoder's mean and log-variance at ``z = mu(x)``, the package's residuals ``r`` and
    ``recon_nll`` terms, and ``recon_mahalanobis``, float64."""
    mean, log_var = model.decoder_distribution(model.decode_logits(model.posterior(x)[0]))
    out = {"x": x, "mean": mean, "log_var": log_var, "r": standardized_residual(model, x),
           "nll_terms": recon_nll_per_feature(model, x),
           "recon_mahalanobis": model.scorer.score_as(model, x, "recon_mahalanobis")}
    return {k: v.double().numpy() for k, v in out.items()}


def mahalanobis_to(train: np.ndarray):
    """The package's Mahalanobis distance to the training vectors' Gaussian (shrinkage as the Scorer's)."""
    mean, precision = gaussian_precision(train, shrinkage=1e-3)
    return lambda v: mahalanobis_distance(torch.from_numpy(v), mean, precision).numpy()


def fit_variants(train: dict[str, np.ndarray], seed: int):
    """Statistics of the normal training rows; returns ``{name: score function of decoder_outputs()}``."""
    terms = train["nll_terms"]
    t_mean, t_sd = terms.mean(0), terms.std(0)
    rng = np.random.default_rng(seed)
    sub = train["r"][rng.choice(len(train["r"]), min(20_000, len(train["r"])), replace=False)]
    t_params = [stats.t.fit(sub[:, j]) for j in range(sub.shape[1])]
    abs_sorted = np.sort(np.abs(train["r"]), axis=0)
    raw_residual = mahalanobis_to(train["x"] - train["mean"])
    inputs = mahalanobis_to(train["x"])

    def student_t(d):
        return -sum(stats.t.logpdf(d["r"][:, j], *t_params[j]) for j in range(d["r"].shape[1]))

    def fisher_tail(d):
        n = len(abs_sorted)
        out = np.zeros(len(d["r"]))
        for j in range(d["r"].shape[1]):
            count = n - np.searchsorted(abs_sorted[:, j], np.abs(d["r"][:, j]), side="left")
            out -= np.log((count + 1) / (n + 1))
        return out

    return {
        "recon_nll": lambda d: d["nll_terms"].sum(1),
        "sq_residuals": lambda d: 0.5 * (d["r"] ** 2).sum(1),
        "top5_terms": lambda d: np.sort(d["nll_terms"], 1)[:, -5:].sum(1),
        "zscored_terms": lambda d: ((d["nll_terms"] - t_mean) / t_sd).sum(1),
        "student_t": student_t,
        "fisher_tail": fisher_tail,
        "maha_raw_residual": lambda d: raw_residual(d["x"] - d["mean"]),
        "maha_inputs": lambda d: inputs(d["x"]),
        "recon_mahalanobis": lambda d: d["recon_mahalanobis"],
        "full_gaussian_nll": lambda d: 0.5 * d["recon_mahalanobis"] ** 2 + 0.5 * d["log_var"].sum(1),
    }


def run(split: str, seed: int, recipe: dict, epochs: int | None) -> dict:
    dm = cc.make_datamodule(recipe["data"]["init_args"], split, seed)
    val = cc.labelled_validation(dm)
    weight = cc.validation_weight(val)
    model, info = cc.train_aelab(recipe, dm, seed, epochs)
    fit_stats(model.scorer, model, dm.train_set, 2000, seed)
    data = {name: decoder_outputs(model, ds.inputs) for name, ds in
            (("train", dm.train_set), ("val", val), ("test", dm.test_set))}
    variants = fit_variants(data["train"], seed)
    labels, val_labels = dm.test_set.extras["anomaly"].numpy(), val.extras["anomaly"].numpy()
    out = {"split": split, "seed": seed, **info, "variants": {}}
    for name, fn in variants.items():
        m = cc.detection_metrics(fn(data["test"]), labels)
        out["variants"][name] = {"auroc": m["auroc"], "auprc": m["auprc"],
                                 "val_auprc_w": cc.weighted_auprc(fn(data["val"]), val_labels, weight)}
        print(f"  {split} seed {seed} {name:18s} val AUPRC_w {out['variants'][name]['val_auprc_w']:.4f}  "
              f"test AUPRC {m['auprc']:.4f} AUROC {m['auroc']:.4f}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--splits", nargs="+", default=["random", "ordered"], choices=["random", "ordered"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--vae_config", default=cc.RECIPES["VAE"])
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's max_epochs")
    parser.add_argument("--out", default="benchmarks/results/creditcard_residuals.json")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    torch.set_num_threads(1)
    recipe = cc.load_recipe(args.vae_config)
    start = time.perf_counter()
    runs = [run(split, seed, recipe, args.epochs) for split in args.splits for seed in args.seeds]
    summary: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for split in args.splits:
        mine = [r for r in runs if r["split"] == split]
        summary[split] = {name: {k: cc.mean_sd([r["variants"][name][k] for r in mine])
                                 for k in ("val_auprc_w", "auprc", "auroc")} for name in mine[0]["variants"]}
        print(f"\n## split: {split} (mean +- sd over {len(mine)} seeds)")
        print(f"{'variant':20s} {'val AUPRC_w':>12s} {'test AUPRC':>16s} {'test AUROC':>16s}")
        for name, m in summary[split].items():
            print(f"{name:20s} {m['val_auprc_w']['mean']:12.3f} {m['auprc']['mean']:9.3f} +- {m['auprc']['sd']:.3f} "
                  f"{m['auroc']['mean']:9.3f} +- {m['auroc']['sd']:.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "creditcard_residuals", "args": vars(args), "recipe": recipe,
                               "torch": torch.__version__, "wall_s": time.perf_counter() - start,
                               "summary": summary, "runs": runs}, indent=1))
    print(f"\nwrote {out} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
