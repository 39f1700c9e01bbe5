"""Pruning benchmark: the same Optuna study run twice, with and without a pruner.

Both runs use the tune YAML's recipe, search space and sampler, the same seed (so the same
per-trial sampler seeds) and the same trial budget, each in its own study of a fresh storage.
Reported per run: best validation value (the tuned metric), trials complete / pruned, total
training epochs actually run (sum over trials, pruned trials counted up to where they stopped),
and wall time (seconds). Prints a table and writes JSON.

    python benchmarks/pruning.py                        # CAE, 10 trials x 4 epochs on 10% of train
    python benchmarks/pruning.py --n_trials 20 --max_epochs 10 --limit_train_batches 1.0
    python benchmarks/pruning.py --pruner '{name: hyperband, min_resource: 1, max_resource: 4}'

The default pruner is MedianPruner(n_startup_trials=2, n_warmup_steps=1), scaled to the short
runs (the tune YAML's own pruner may wait longer than ``max_epochs``); pass ``--pruner yaml`` to
use the one in the tune YAML.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

from aelab.tuning import TuneSettings
from aelab.tuning.command import make_parser
from aelab.tuning.study import run

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PRUNER = {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 1}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(ROOT / "tune" / "cae.yaml"), help="tune YAML (default tune/cae.yaml)")
    p.add_argument("--n_trials", type=int, default=10, help="trials per run (default 10)")
    p.add_argument("--max_epochs", type=int, default=4, help="epochs per trial (default 4)")
    p.add_argument("--limit_train_batches", type=float, default=0.1,
                   help="fraction (<= 1.0) or number (> 1) of training batches per epoch (default 0.1)")
    p.add_argument("--limit_val_batches", type=float, default=1.0, help="likewise for validation (default 1.0)")
    p.add_argument("--pruner", default=yaml.safe_dump(DEFAULT_PRUNER, default_flow_style=True).strip(),
                   help="pruner of the pruned run as YAML (name or {name: ..., args}), or 'yaml' for the tune "
                        f"YAML's own (default {DEFAULT_PRUNER})")
    p.add_argument("--seed", type=int, default=0, help="study seed, the same for both runs (default 0)")
    p.add_argument("--test", action="store_true", help="also test each complete trial (records test_mse)")
    p.add_argument("--work_dir", default=None,
                   help="storage (SQLite) and trial logs; default: a temporary directory, deleted afterwards")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pruning.json"), help="JSON result file")
    return p.parse_args(argv)


def _limit(value: float) -> int | float:
    return int(value) if value > 1 else float(value)


def base_settings(args: argparse.Namespace) -> TuneSettings:
    cfg = make_parser().parse_args(["--config", args.config])
    fields = {k: cfg[k] for k in TuneSettings.__dataclass_fields__}
    settings = TuneSettings(**fields)
    settings.recipe = str(Path(settings.recipe) if Path(settings.recipe).is_file()
                          else Path(args.config).resolve().parent.parent / settings.recipe)
    settings.overrides = {**settings.overrides, "trainer.max_epochs": args.max_epochs,
                          "trainer.limit_train_batches": _limit(args.limit_train_batches),
                          "trainer.limit_val_batches": _limit(args.limit_val_batches),
                          "trainer.enable_progress_bar": False, "trainer.enable_model_summary": False}
    settings.n_trials, settings.timeout, settings.seed, settings.n_jobs = args.n_trials, None, args.seed, 1
    settings.test_trials, settings.figures = args.test, False
    return settings


def summarise(study: optuna.Study, wall: float) -> dict:
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = study.best_trial if complete else None
    return {
        "best_value": best.value if best else None,
        "best_trial": best.number if best else None,
        "best_params": best.params if best else None,
        "best_test_mse": best.user_attrs.get("test_mse") if best else None,
        "n_complete": len(complete),
        "n_pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "n_failed": sum(t.state == TrialState.FAIL for t in trials),
        "total_epochs": int(sum(t.user_attrs.get("epochs", 0) for t in trials)),
        "wall_seconds": round(wall, 1),
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    base = base_settings(args)
    pruner = base.pruner if args.pruner == "yaml" else yaml.safe_load(args.pruner)
    tmp = None if args.work_dir else tempfile.TemporaryDirectory(prefix="aelab_pruning_")
    work = Path(args.work_dir or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{work / 'pruning_benchmark.db'}"
    results = {}
    try:
        # untimed warm-up (first-trial costs: data loading, Lightning set-up), so neither run pays them
        warm = {**vars(base), "n_trials": 1, "pruner": "none", "study_name": "pruning_benchmark_warmup",
                "storage": storage, "output_dir": str(work / "studies"), "test_trials": False}
        warm["overrides"] = {**base.overrides, "trainer.max_epochs": 1, "trainer.limit_train_batches": 1,
                             "trainer.limit_val_batches": 1}
        print("== warm-up (not timed)", flush=True)
        run(TuneSettings(**warm))
        for label, run_pruner in (("pruning", pruner), ("no_pruning", "none")):
            name = f"pruning_benchmark_{label}"
            try:  # a fresh study each time, never a resumed one
                optuna.delete_study(study_name=name, storage=storage)
            except KeyError:
                pass
            settings = TuneSettings(**{**vars(base), "pruner": run_pruner, "study_name": name, "storage": storage,
                                       "output_dir": str(work / "studies")})
            print(f"== {label}: pruner {run_pruner}", flush=True)
            start = time.perf_counter()
            study = run(settings)
            results[label] = summarise(study, time.perf_counter() - start)
    finally:
        if tmp is not None:
            tmp.cleanup()

    p, n = results["pruning"], results["no_pruning"]
    report = {
        "benchmark": "pruning",
        "config": str(args.config),
        "metric": base.metric,
        "direction": base.direction,
        "n_trials": args.n_trials,
        "max_epochs": args.max_epochs,
        "limit_train_batches": _limit(args.limit_train_batches),
        "limit_val_batches": _limit(args.limit_val_batches),
        "seed": args.seed,
        "sampler": base.sampler,
        "pruner": pruner,
        "epochs_saved_fraction": round(1 - p["total_epochs"] / n["total_epochs"], 3) if n["total_epochs"] else None,
        "speedup_wall": round(n["wall_seconds"] / p["wall_seconds"], 2) if p["wall_seconds"] else None,
        "runs": results,
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0], "cpus": os.cpu_count(),
                    "torch_threads": __import__("torch").get_num_threads()},
    }
    print_table(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}", flush=True)
    return report


def print_table(report: dict) -> None:
    metric = report["metric"]
    rows = [("run", f"best {metric}", "complete", "pruned", "epochs", "wall s")]
    for label, r in report["runs"].items():
        best = f"{r['best_value']:.5f}" if r["best_value"] is not None else "-"
        rows.append((label, best, str(r["n_complete"]), str(r["n_pruned"]), str(r["total_epochs"]),
                     f"{r['wall_seconds']:.0f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print(f"\npruning benchmark: {report['n_trials']} trials x <= {report['max_epochs']} epochs, "
          f"limit_train_batches {report['limit_train_batches']}, seed {report['seed']}, pruner {report['pruner']}")
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    if report["epochs_saved_fraction"] is not None:
        print(f"pruning saved {100 * report['epochs_saved_fraction']:.0f}% of the epochs, "
              f"wall-time speed-up x{report['speedup_wall']}\n", flush=True)


if __name__ == "__main__":
    main()
