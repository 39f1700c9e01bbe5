"""Credit-card fraud (../shared/DATA.md): aelab's dense AE and VAE against scikit-learn's IsolationForest
and a plain Keras-style dense autoencoder, on the same splits, side by side.

For every split (``random``: stratified 70 / 30; ``ordered``: the last 30 % of the transactions by
``Time`` are the test set) and every seed:

* the datamodule of the VAE recipe (``configs/creditcard_vae.yaml``, its ``data:`` section with the
  split and seed replaced) gives the training rows (normal rows of the training part, minus the
  validation rows), the normal validation rows and the test rows (never seen before the test);
* aelab's dense **AE** (``configs/creditcard_ae.yaml``) and **VAE** (``configs/creditcard_vae.yaml``) are
  trained as ``aelab fit`` trains them (the recipe's model, epochs, batch size and ``val_loss``
  checkpoint monitor; the best checkpoint is scored), then scored on the test rows by **every
  applicable score** (``aelab evaluate``'s score functions and settings: the recipe's ``scorer:`` settings
  for its own score, the registry's defaults for the others), and by ``recon_nll`` summed over the
  features chosen on the labelled validation set below (``recon_nll_chosen``: greedy backward
  elimination on val AUPRC_w; the training period's frauds choose them, a semi-supervised row);
* the baselines are trained on *all* normal rows of the training part (training + validation rows,
  what the issue's baselines used): ``IsolationForest`` (scikit-learn defaults: 100 trees, 256 rows per
  tree; score ``-score_samples``), and a plain dense autoencoder written here in PyTorch in the style
  of the usual Kaggle notebook (Keras layers 30-14-7-7-14-30: tanh, relu, tanh, relu, linear output;
  L1 activity penalty 1e-5 on the first layer; Glorot-uniform weights; MSE; Adam 1e-3 with
  Keras' epsilon 1e-7; 10 epochs, batch 32; score = per-row MSE). Each baseline runs on two inputs:
  ``std30`` (the issue's: all 30 columns, ``log1p(Amount)``, StandardScaler fitted on the normal
  training rows) and ``recipe`` (exactly the VAE recipe's inputs).

Metrics (anomaly = fraud = positive; the package's own code, :mod:`aelab.evaluation.metrics`, for every
model): AUROC, AUPRC (average precision), recall at 1 % false-positive rate (the highest true-positive
rate of a threshold whose false-positive rate is <= 0.01, from ``roc_curve``), precision at 80 % recall
(the highest precision of a threshold whose recall is >= 0.8, from ``pr_curve``); fit and score
wall-clock seconds (score = the test rows; the scores with statistics of the training rows,
``mahalanobis``, ``knn`` and ``recon_mahalanobis``, include the pass over the training rows that fits
them). Every aelab score is also measured on a **labelled validation set** that never touches
the test rows: the normal validation rows plus the frauds of the training period (the
``semi_supervised`` protocol leaves those out of training), ``val_auprc`` at that set's own base
rate, and ``val_auprc_w`` with the normal rows weighted to the data set's 0.172 % fraud rate (the
model-selection criterion used for the recipes, docs/tables.md).

Seeds: seed ``s`` seeds the split (``random``; ``ordered`` has one split), the networks' initialisation
and sampling, and the IsolationForest. Results: mean +- sd (sample sd) over the seeds, printed and
written to JSON. Run it with one thread (``OMP_NUM_THREADS=1``):

    OMP_NUM_THREADS=1 python benchmarks/creditcard.py                  # both splits, seeds 0 1 2
    OMP_NUM_THREADS=1 python benchmarks/creditcard.py --splits random --seeds 0 --models VAE IF
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import platform
import tempfile
import time
import warnings
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
import yaml
from torch import nn

from aelab.data import TabularDataModule
from aelab.data.datasets import InMemoryDataset
from aelab.data.protocols.tabular import anomaly_flags
from aelab.evaluation import anomaly_metrics, pr_curve, roc_curve
from aelab.evaluation.compute import score_dataset
from aelab.evaluation.feature_subset import backward_feature_subset
from aelab.scoring.calibrate import fit_stats
from aelab.scoring.functions import recon_nll_per_feature
from aelab.scoring.registry import SCORES, applicable_scores
from aelab.scoring.scorer import Scorer, attach_scorer

FRAUD_RATE = 492 / 284_807  # the whole file's (../shared/DATA.md), used to weight the validation rows
AELAB_MODELS = ("AE", "VAE")
BASELINES = ("IF", "KerasAE")
RECIPES = {"AE": "configs/creditcard_ae.yaml", "VAE": "configs/creditcard_vae.yaml"}


# -- metrics -------------------------------------------------------------------------------------------
def detection_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """AUROC, AUPRC, recall at 1 % FPR and precision at 80 % recall (package metric code)."""
    s, y = torch.from_numpy(np.asarray(scores, dtype=np.float64)), torch.from_numpy(np.asarray(labels)).long()
    m = anomaly_metrics(s, y)
    fpr, tpr, _ = roc_curve(s, y)
    precision, recall, _ = pr_curve(s, y)
    return {"auroc": m["auroc"], "auprc": m["auprc"],
            "recall_at_fpr1": float(tpr[fpr <= 0.01].max()),
            "precision_at_recall80": float(precision[recall >= 0.8].max())}


def weighted_auprc(scores: np.ndarray, labels: np.ndarray, weight: float) -> float:
    """Average precision with every normal row counted ``weight`` times (the positives once): the AUPRC
    the scores would have at a lower fraud rate (scikit-learn ``average_precision_score``)."""
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(labels, scores, sample_weight=np.where(labels == 1, 1.0, weight)))


# -- data ------------------------------------------------------------------------------------------------
def load_recipe(path: str | Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def make_datamodule(data_args: dict, split: str, seed: int, **changes) -> TabularDataModule:
    args = {**data_args, "split": split, "seed": seed, **changes}
    args.setdefault("order_column", "Time")
    dm = TabularDataModule(**args)
    dm.setup("fit")
    return dm


def training_period_frauds(dm: TabularDataModule) -> torch.Tensor:
    """Model inputs of the anomalous rows outside the test set (the training period's frauds, which the
    ``semi_supervised`` protocol keeps out of training and testing)."""
    df = pd.read_csv(dm.path, usecols=[*dm.feature_columns, dm.label_column])
    flags = anomaly_flags(df[dm.label_column], dm.normal_label, dm.path, dm.label_column) == 1
    test_rows = {int(n) for n in dm.test_set.names}
    rows = [i for i in np.flatnonzero(flags) if i not in test_rows]
    return dm.prepare_rows(df.loc[rows, dm.feature_columns])


def labelled_validation(dm: TabularDataModule) -> InMemoryDataset:
    """Normal validation rows + training-period frauds, labels 0 / 1."""
    frauds = training_period_frauds(dm)
    normal = dm.normal_val_set.inputs
    labels = torch.cat([torch.zeros(len(normal)), torch.ones(len(frauds))]).long()
    return InMemoryDataset(torch.cat([normal, frauds]), labels, {"anomaly": labels.clone()})


# -- aelab models ----------------------------------------------------------------------------------------
def build_model(recipe: dict, input_shape: tuple[int, ...]):
    spec = recipe["model"]
    module, name = spec["class_path"].rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    model = cls(**{**spec.get("init_args", {}), "input_shape": input_shape, "log_images": 0})
    scorer_args = recipe.get("scorer") or {}
    attach_scorer(model, Scorer(**scorer_args))
    return model


def validation_weight(val: InMemoryDataset) -> float:
    """Weight of a normal row of the labelled validation set that brings its fraud rate to the data set's."""
    n_frauds = int(val.extras["anomaly"].sum())
    return (n_frauds / (len(val) - n_frauds)) / (FRAUD_RATE / (1 - FRAUD_RATE))


def train_aelab(recipe: dict, dm: TabularDataModule, seed: int, epochs: int | None):
    """The recipe's model trained as ``aelab fit`` trains it (seeded, best ``val_loss`` checkpoint loaded),
    in eval mode, and ``{"fit_s", "epochs", "best_epoch", "best_val_loss"}``."""
    pl.seed_everything(seed, verbose=False)
    model = build_model(recipe, dm.input_shape)
    trainer_cfg = recipe.get("trainer", {})
    max_epochs = epochs or trainer_cfg.get("max_epochs", 20)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = pl.callbacks.ModelCheckpoint(dirpath=tmp, monitor="val_loss", mode="min")
        trainer = pl.Trainer(max_epochs=max_epochs, accelerator="cpu", devices=1, logger=False,
                             callbacks=[checkpoint], enable_progress_bar=False, enable_model_summary=False,
                             num_sanity_val_steps=0, deterministic=False)
        start = time.perf_counter()
        trainer.fit(model, dm)
        best = torch.load(checkpoint.best_model_path, weights_only=True, map_location="cpu")
        model.load_state_dict(best["state_dict"], strict=False)
        fit_s = time.perf_counter() - start
        best_epoch = int(best["epoch"])
    model.eval()
    return model, {"fit_s": fit_s, "epochs": max_epochs, "best_epoch": best_epoch,
                   "best_val_loss": float(checkpoint.best_model_score)}


def run_aelab(name: str, recipe: dict, dm: TabularDataModule, val: InMemoryDataset, seed: int,
              epochs: int | None, val_weight: float, batch_size: int = 2000,
              scores: list[str] | None = None) -> dict:
    model, info = train_aelab(recipe, dm, seed, epochs)
    scorer = model.scorer
    labels = dm.test_set.extras["anomaly"].numpy()
    out = {**info, "scores": {}}
    stats_s = None
    for score in scores or applicable_scores(model):
        settings = scorer.settings_for(score)
        start = time.perf_counter()
        if SCORES[score].needs_stats:
            if stats_s is None:  # the training codes' statistics, once per model
                fit_stats(scorer, model, dm.train_set, batch_size, seed)
                stats_s = time.perf_counter() - start
            start -= stats_s
        test = score_dataset(scorer, model, dm.test_set, score, settings, batch_size, seed)
        score_s = time.perf_counter() - start
        v = score_dataset(scorer, model, val, score, settings, batch_size, seed)
        vy = val.extras["anomaly"].numpy()
        out["scores"][score] = {**detection_metrics(test, labels), "score_s": score_s, "settings": settings,
                                "val_auprc": anomaly_metrics(torch.from_numpy(v), torch.from_numpy(vy))["auprc"],
                                "val_auprc_w": weighted_auprc(v, vy, val_weight)}
        print(f"    {name:8s} {score:12s} AUROC {out['scores'][score]['auroc']:.4f} AUPRC "
              f"{out['scores'][score]['auprc']:.4f}  (val AUPRC_w {out['scores'][score]['val_auprc_w']:.4f}, "
              f"score {score_s:.1f} s)", flush=True)
    if "recon_nll" in out["scores"]:
        m = chosen_feature_score(model, dm, val, val_weight, batch_size, seed)
        out["scores"]["recon_nll_chosen"] = m
        print(f"    {name:8s} {'recon_nll_chosen':12s} AUROC {m['auroc']:.4f} AUPRC {m['auprc']:.4f}  (val AUPRC_w "
              f"{m['val_auprc_w']:.4f}, {len(m['features'])} features: {' '.join(m['features'])})", flush=True)
    return out


def chosen_feature_score(model, dm: TabularDataModule, val: InMemoryDataset, val_weight: float,
                         batch_size: int, seed: int) -> dict:
    """``recon_nll`` summed over the features chosen on the labelled validation set (greedy backward
    elimination on val AUPRC_w, :func:`aelab.evaluation.feature_subset.backward_feature_subset`): the
    training period's frauds choose the features, so this row is a semi-supervised detector; its val
    AUPRC_w is the figure it was chosen on (optimistic), the test rows are scored once at the end."""
    scorer = model.scorer
    vy = val.extras["anomaly"].numpy()
    start = time.perf_counter()
    with torch.no_grad():
        per_feature = recon_nll_per_feature(model, val.inputs).double().numpy()
    kept, path = backward_feature_subset(per_feature, vy, np.where(vy == 1, 1.0, val_weight))
    select_s = time.perf_counter() - start
    settings = {"features": kept}
    start = time.perf_counter()
    test = score_dataset(scorer, model, dm.test_set, "recon_nll", settings, batch_size, seed)
    score_s = time.perf_counter() - start
    v = score_dataset(scorer, model, val, "recon_nll", settings, batch_size, seed)
    return {**detection_metrics(test, dm.test_set.extras["anomaly"].numpy()), "score_s": score_s,
            "select_s": select_s, "settings": settings, "features": [dm.feature_columns[k] for k in kept],
            "selection_path": [{"dropped": None if p["dropped"] is None else dm.feature_columns[p["dropped"]],
                                "val_auprc_w": p["auprc"]} for p in path],
            "val_auprc": anomaly_metrics(torch.from_numpy(v), torch.from_numpy(vy))["auprc"],
            "val_auprc_w": weighted_auprc(v, vy, val_weight)}


# -- baselines ------------------------------------------------------------------------------------------
class KerasStyleAE(nn.Module):
    """The usual Kaggle dense autoencoder: D -> 14 (tanh) -> 7 (relu) -> 7 (tanh) -> 14 (relu) -> D (linear)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(d, 14), nn.Tanh(), nn.Linear(14, 7), nn.ReLU())
        self.decoder = nn.Sequential(nn.Linear(7, 7), nn.Tanh(), nn.Linear(7, 14), nn.ReLU(), nn.Linear(14, d))
        for m in self.modules():
            if isinstance(m, nn.Linear):  # Keras defaults
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h1 = self.encoder[1](self.encoder[0](x))
        return self.decoder(self.encoder[3](self.encoder[2](h1))), h1


def keras_ae(train: torch.Tensor, seed: int, epochs: int = 10, batch_size: int = 32, l1: float = 1e-5):
    """Train the Keras-style autoencoder; returns the scoring function (per-row MSE)."""
    torch.manual_seed(seed)
    net = KerasStyleAE(train.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(train), generator=generator).split(batch_size):
            x = train[idx]
            recon, h1 = net(x)
            loss = (recon - x).pow(2).mean() + l1 * h1.abs().sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    @torch.no_grad()
    def score(x: torch.Tensor) -> np.ndarray:
        return torch.cat([(net(b)[0] - b).pow(2).mean(1) for b in x.split(8192)]).double().numpy()

    return score


def isolation_forest(train: torch.Tensor, seed: int):
    """Fit scikit-learn's IsolationForest (defaults); returns the scoring function (``-score_samples``)."""
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(random_state=seed, n_jobs=1).fit(train.numpy())
    return lambda x: (-forest.score_samples(x.numpy())).astype(np.float64)


def run_baselines(names: list[str], inputs: dict[str, TabularDataModule], seed: int, val_weight: float) -> dict:
    out = {}
    for variant, dm in inputs.items():
        train = torch.cat([dm.train_set.inputs, dm.normal_val_set.inputs])  # every normal training-part row
        test, labels = dm.test_set.inputs, dm.test_set.extras["anomaly"].numpy()
        val = labelled_validation(dm)
        for name in names:
            start = time.perf_counter()
            score = (isolation_forest if name == "IF" else keras_ae)(train, seed)
            fit_s = time.perf_counter() - start
            start = time.perf_counter()
            scores = score(test)
            score_s = time.perf_counter() - start
            v, vy = score(val.inputs), val.extras["anomaly"].numpy()
            key = f"{name}[{variant}]"
            out[key] = {**detection_metrics(scores, labels), "fit_s": fit_s, "score_s": score_s,
                        "n_train": len(train), "n_features": train.shape[1],
                        "val_auprc": anomaly_metrics(torch.from_numpy(v), torch.from_numpy(vy))["auprc"],
                        "val_auprc_w": weighted_auprc(v, vy, val_weight)}
            print(f"    {key:18s} AUROC {out[key]['auroc']:.4f} AUPRC {out[key]['auprc']:.4f}  "
                  f"(val AUPRC_w {out[key]['val_auprc_w']:.4f}, fit {fit_s:.1f} s, score {score_s:.1f} s)", flush=True)
    return out


# -- summary ---------------------------------------------------------------------------------------------
METRICS = ("auroc", "auprc", "recall_at_fpr1", "precision_at_recall80", "fit_s", "score_s")


def mean_sd(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": len(a)}


def summarise(runs: list[dict]) -> dict:
    """``{split: {row name: {metric: {mean, sd, n}}}}``; a row is ``AE/mse``, ``VAE/recon_prob``,
    ``IF[std30]``, ...; aelab rows also carry val_auprc / val_auprc_w."""
    rows: dict[str, dict[str, dict[str, list[float]]]] = {}
    for run in runs:
        table = rows.setdefault(run["split"], {})
        for model in AELAB_MODELS:
            if model not in run:
                continue
            for score, m in run[model]["scores"].items():
                row = table.setdefault(f"{model}/{score}", {})
                for k in (*METRICS, "val_auprc", "val_auprc_w"):
                    value = run[model]["fit_s"] if k == "fit_s" else m[k]
                    row.setdefault(k, []).append(value)
        for key, m in run.get("baselines", {}).items():
            row = table.setdefault(key, {})
            for k in (*METRICS, "val_auprc", "val_auprc_w"):
                row.setdefault(k, []).append(m[k])
    return {split: {row: {k: mean_sd(v) for k, v in ms.items()} for row, ms in table.items()}
            for split, table in rows.items()}


def print_table(summary: dict) -> None:
    for split, table in summary.items():
        n = next(iter(next(iter(table.values())).values()))["n"]
        print(f"\n## split: {split} (mean +- sd over {n} seeds)")
        print(f"{'model / score':24s} {'AUROC':>15s} {'AUPRC':>15s} {'R@1%FPR':>15s} {'P@80%R':>15s} "
              f"{'fit s':>8s} {'score s':>8s} {'val AUPRC_w':>12s}")
        for row, m in table.items():
            cell = lambda k: f"{m[k]['mean']:.3f} +- {m[k]['sd']:.3f}"  # noqa: E731
            val = f"{m['val_auprc_w']['mean']:.3f}" if "val_auprc_w" in m else ""
            print(f"{row:24s} {cell('auroc'):>15s} {cell('auprc'):>15s} {cell('recall_at_fpr1'):>15s} "
                  f"{cell('precision_at_recall80'):>15s} {m['fit_s']['mean']:8.1f} {m['score_s']['mean']:8.1f} "
                  f"{val:>12s}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--splits", nargs="+", default=["random", "ordered"], choices=["random", "ordered"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=[*AELAB_MODELS, *BASELINES],
                        choices=[*AELAB_MODELS, *BASELINES])
    parser.add_argument("--vae_config", default=RECIPES["VAE"])
    parser.add_argument("--ae_config", default=RECIPES["AE"])
    parser.add_argument("--epochs", type=int, default=None, help="override the recipes' max_epochs")
    parser.add_argument("--baseline_inputs", nargs="+", default=["std30", "recipe"], choices=["std30", "recipe"])
    parser.add_argument("--out", default="benchmarks/results/creditcard.json")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    torch.set_num_threads(1)

    recipes = {"VAE": load_recipe(args.vae_config), "AE": load_recipe(args.ae_config)}
    data_args = recipes["VAE"]["data"]["init_args"]
    if recipes["AE"]["data"]["init_args"] != data_args:
        print("note: the AE recipe's data section differs from the VAE's; both models use the VAE recipe's data "
              "(same split, same rows)", flush=True)
    runs, start = [], time.perf_counter()
    for split in args.splits:
        for seed in args.seeds:
            print(f"[{time.perf_counter() - start:7.0f} s] split {split}, seed {seed}", flush=True)
            dm = make_datamodule(data_args, split, seed)
            val = labelled_validation(dm)
            n_test = len(dm.test_set)
            n_fraud = int(dm.test_set.extras["anomaly"].sum())
            n_val_frauds = int(val.extras["anomaly"].sum())
            val_weight = validation_weight(val)
            run = {"split": split, "seed": seed, "n_train": len(dm.train_set), "n_val": len(dm.val_set),
                   "n_val_frauds": n_val_frauds, "n_test": n_test, "n_test_frauds": n_fraud,
                   "features": dm.feature_columns, "val_weight": val_weight}
            for model in AELAB_MODELS:
                if model in args.models:
                    run[model] = run_aelab(model, recipes[model], dm, val, seed, args.epochs, val_weight)
            baselines = [b for b in BASELINES if b in args.models]
            if baselines:
                inputs = {}
                if "std30" in args.baseline_inputs:
                    inputs["std30"] = make_datamodule(
                        {"path": data_args["path"], "label_column": data_args.get("label_column", "Class"),
                         "transforms": {"Amount": "log1p"}, "scaler": "standard",
                         "val_size": data_args.get("val_size", 0.1), "test_size": data_args.get("test_size", 0.3)},
                        split, seed)
                    assert inputs["std30"].test_set.names == dm.test_set.names  # the same test rows
                if "recipe" in args.baseline_inputs:
                    inputs["recipe"] = dm
                run["baselines"] = run_baselines(baselines, inputs, seed, val_weight)
            runs.append(run)
    summary = summarise(runs)
    print_table(summary)
    result = {"benchmark": "creditcard", "args": vars(args), "recipes": recipes, "torch": torch.__version__,
              "platform": platform.platform(), "threads": torch.get_num_threads(),
              "wall_s": time.perf_counter() - start, "summary": summary, "runs": runs}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=lambda o: o if not isinstance(o, float) or math.isfinite(o)
                              else None))
    print(f"\nwrote {out} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
