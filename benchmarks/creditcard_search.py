"""Credit-card fraud: how the VAE recipe (``configs/creditcard_vae.yaml``) was chosen.

Each variant is the recipe with some model / data arguments and the number of epochs replaced. It is
trained exactly as ``benchmarks/creditcard.py`` trains the recipe (its ``run_aelab``: the best
``val_loss`` checkpoint), on both splits and seeds 0, 1, 2, and scored by one score (``recon_prob`` by
default). The figure a variant is chosen on is **val AUPRC_w**: AUPRC on the normal validation rows plus
the training period's frauds, normal rows weighted to the data set's fraud rate (never a test row; see
``benchmarks/creditcard.py``). The test AUPRC / AUROC are printed next to it for the record only.

    OMP_NUM_THREADS=1 python benchmarks/creditcard_search.py \\
        'recipe={}' 'e5={"epochs": 5}' 'h32_16={"model": {"hidden_dims": [32, 16]}}' 'q={"data": {"scaler": "quantile"}}'
    python benchmarks/creditcard_search.py --diag_gaussian     # only the no-network reference (12 s)

A variant is ``NAME=JSON`` with the keys ``model`` (the recipe's ``model.init_args`` to replace),
``data`` (``data.init_args``), ``epochs`` and ``config`` (another recipe, e.g. ``configs/creditcard_ae.yaml``
with ``--score mse``). Prints one line per variant and split (mean +- sd over seeds) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import creditcard as cc
import torch


def parse_variant(text: str) -> tuple[str, dict]:
    """``NAME=JSON`` -> ``(NAME, dict)``; raises ``SystemExit`` naming the bad variant."""
    name, sep, spec = text.partition("=")
    try:
        changes = json.loads(spec) if sep else None
    except json.JSONDecodeError as err:
        raise SystemExit(f"variant {text!r}: the part after '=' is not JSON ({err})") from None
    if not name or not isinstance(changes, dict) or set(changes) - {"model", "data", "epochs", "config"}:
        raise SystemExit(f"variant {text!r}: expected NAME={{...}} with keys model, data, epochs, config")
    return name, changes


def run_variant(name: str, changes: dict, splits: list[str], seeds: list[int], score: str) -> dict:
    """Train and score one variant on every split and seed; per split the lists of val AUPRC_w, test
    AUPRC and test AUROC (one entry per seed)."""
    recipe = cc.load_recipe(changes.get("config", cc.RECIPES["VAE"]))
    recipe["model"]["init_args"].update(changes.get("model", {}))
    data_args = {**recipe["data"]["init_args"], **changes.get("data", {})}
    out: dict = {}
    for split in splits:
        for seed in seeds:
            dm = cc.make_datamodule(data_args, split, seed)
            val = cc.labelled_validation(dm)
            run = cc.run_aelab(name, recipe, dm, val, seed, changes.get("epochs"), cc.validation_weight(val),
                               scores=[score])
            m = run["scores"][score]
            entry = out.setdefault(split, {"val_auprc_w": [], "auprc": [], "auroc": [], "fit_s": []})
            for key, value in (("val_auprc_w", m["val_auprc_w"]), ("auprc", m["auprc"]), ("auroc", m["auroc"]),
                               ("fit_s", run["fit_s"])):
                entry[key].append(value)
    return out


def diagonal_gaussian(splits: list[str], seeds: list[int]) -> dict:
    """No-network reference on the recipe's inputs: the negative log-density of a diagonal Gaussian fitted
    to the training rows (per-feature mean and variance), ``0.5 * sum_j (log(2 pi var_j) + (x_j - m_j)^2 /
    var_j)`` nats per row. Per split the lists of test AUPRC and AUROC (one entry per seed)."""
    data_args = cc.load_recipe(cc.RECIPES["VAE"])["data"]["init_args"]
    out: dict = {}
    for split in splits:
        for seed in seeds:
            dm = cc.make_datamodule(data_args, split, seed)
            train, test = dm.train_set.inputs.double(), dm.test_set.inputs.double()
            mean, var = train.mean(0), train.var(0)
            nll = 0.5 * (torch.log(2 * math.pi * var) + (test - mean) ** 2 / var).sum(1)
            m = cc.detection_metrics(nll.numpy(), dm.test_set.extras["anomaly"].numpy())
            entry = out.setdefault(split, {"auprc": [], "auroc": []})
            entry["auprc"].append(m["auprc"])
            entry["auroc"].append(m["auroc"])
    return out


def mean_sd(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} +- {statistics.stdev(values) if len(values) > 1 else 0.0:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="*", help="NAME=JSON (see above)")
    parser.add_argument("--splits", nargs="+", default=["random", "ordered"], choices=["random", "ordered"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--score", default="recon_prob")
    parser.add_argument("--diag_gaussian", action="store_true",
                        help="also the no-network reference: a diagonal Gaussian's negative log-density")
    parser.add_argument("--out", default="benchmarks/results/creditcard_search.json")
    args = parser.parse_args()
    variants = dict(parse_variant(v) for v in args.variants)
    results, start = {}, time.perf_counter()
    for name, changes in variants.items():
        results[name] = {"changes": changes, "splits": run_variant(name, changes, args.splits, args.seeds, args.score)}
        for split, m in results[name]["splits"].items():
            print(f"RESULT {name:20s} {split:8s} val AUPRC_w {mean_sd(m['val_auprc_w'])}  test AUPRC "
                  f"{mean_sd(m['auprc'])}  AUROC {mean_sd(m['auroc'])}", flush=True)
    if args.diag_gaussian:
        results["diag_gaussian"] = {"splits": diagonal_gaussian(args.splits, args.seeds)}
        for split, m in results["diag_gaussian"]["splits"].items():
            print(f"RESULT {'diag_gaussian':20s} {split:8s} test AUPRC {mean_sd(m['auprc'])}  AUROC "
                  f"{mean_sd(m['auroc'])}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "score": args.score, "results": results,
                               "wall_s": time.perf_counter() - start}, indent=1))
    print(f"wrote {out} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
