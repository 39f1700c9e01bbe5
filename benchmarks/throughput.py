"""Training throughput: `aelab fit` (Lightning Trainer, aelab datamodule, the recipe's logging and checkpoint
callbacks) against a plain PyTorch loop over in-memory tensors, same model, data, batch size, optimizer and
schedule, interleaved in one run.

    python benchmarks/throughput.py                      # both models, 3 repeats, 300 timed steps each
    python benchmarks/throughput.py --profile            # plus Lightning's SimpleProfiler on one aelab run

Models: the default recipe (configs/cae.yaml: 8 channels, 64-unit bottleneck, latent 14) and the tuned
32-channel BatchNorm CAE (32 channels, 512 units, latent 16, BatchNorm; README's Optuna study). Steps per
second are measured between step ``--warmup`` and the last step (setup, data loading and the first steps
excluded) from timestamps taken at the end of each optimizer step (callback / loop). Ratio = aelab / plain;
each repeat runs both, alternating which goes first. Writes ``benchmarks/results/throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import aelab  # noqa: F401  (flush-to-zero before torch starts its threads)
import lightning.pytorch as pl
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "cae": {},
    "cae32_bn": {"channels": 32, "batch_norm": True, "latent_dim": 16, "hidden_dim": 512},
}


class StepClock(pl.Callback):
    """Timestamps at the end of every training batch (after the optimizer step)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.times.append(time.perf_counter())


def steps_per_second(times: list[float], warmup: int) -> float:
    return (len(times) - 1 - warmup) / (times[-1] - times[warmup])


def aelab_args(model: str, steps: int, log_dir: str, profile: bool) -> list[str]:
    args = ["fit", "--config", str(ROOT / "configs" / "cae.yaml"), "--trainer.max_steps", str(steps),
            "--trainer.max_epochs", "-1", "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
            "--trainer.logger.init_args.save_dir", log_dir, "--trainer.enable_model_summary", "false",
            "--test_after_fit", "false", "--data.init_args.data_dir", "null"]
    for key, value in MODELS[model].items():
        args += [f"--model.init_args.{key}", str(value).lower() if isinstance(value, bool) else str(value)]
    if profile:
        args += ["--trainer.profiler", "simple"]
    return args


def run_aelab(model: str, steps: int, warmup: int, log_dir: str, profile: bool = False) -> tuple[float, str]:
    """`aelab fit` of the recipe for ``steps`` steps (no validation); returns steps/s (and the profile)."""
    from aelab.cli import build

    clock = StepClock()
    cli = build(aelab_args(model, steps, log_dir, profile)[1:], run=False, trainer_defaults={"callbacks": [clock]})
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    summary = cli.trainer.profiler.summary() if profile else ""
    return steps_per_second(clock.times, warmup), summary


def run_plain(model: str, steps: int, warmup: int, seed: int = 42) -> float:
    """The same CAE, Adam and one-cycle schedule, trained by a plain loop over the datamodule's uint8 tensor."""
    from aelab.data import FashionMNISTDataModule
    from aelab.models import CAE

    torch.manual_seed(seed)
    dm = FashionMNISTDataModule(data_dir=None, batch_size=128, seed=seed)
    dm.setup("fit")
    images = dm.train_set.inputs  # (55000, 1, 28, 28) uint8
    net = CAE(**{"channels": 8, "latent_dim": 14, "hidden_dim": 64, **MODELS[model]})
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-5)
    batches_per_epoch = -(-len(images) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    times, step = [], 0
    net.train()
    while step < steps:
        order = torch.randperm(len(images), generator=generator)
        for b in range(batches_per_epoch):
            x = images[order[b * 128 : (b + 1) * 128]].float().div_(255)
            loss = F.mse_loss(net.reconstruct(x), x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            times.append(time.perf_counter())
            step += 1
            if step == steps:
                break
    return steps_per_second(times, warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--steps", type=int, default=320, help="steps per run (the first --warmup are not timed)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="Lightning SimpleProfiler on one extra aelab run")
    parser.add_argument("--log_dir", default="/tmp/aelab_throughput_logs")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "throughput.json"))
    args = parser.parse_args()

    import logging
    import warnings

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    results: dict = {"device": platform.processor() or platform.machine(), "cpu_count": torch.get_num_threads(),
                     "torch": torch.__version__, "lightning": pl.__version__, "steps": args.steps,
                     "warmup": args.warmup, "repeats": args.repeats, "models": {}}
    if torch.cuda.is_available():
        results["device"] = torch.cuda.get_device_name()
    print(f"{'model':10s} {'repeat':>6s} {'plain steps/s':>14s} {'aelab steps/s':>14s} {'ratio':>7s}", flush=True)
    for model in args.models:
        rows = []
        for r in range(args.repeats):
            order = ("plain", "aelab") if r % 2 == 0 else ("aelab", "plain")
            got = {}
            for kind in order:
                got[kind] = (run_plain(model, args.steps, args.warmup) if kind == "plain"
                             else run_aelab(model, args.steps, args.warmup, args.log_dir)[0])
            rows.append({"plain": got["plain"], "aelab": got["aelab"], "ratio": got["aelab"] / got["plain"]})
            print(f"{model:10s} {r:6d} {got['plain']:14.1f} {got['aelab']:14.1f} {rows[-1]['ratio']:7.3f}", flush=True)
        ratios = [row["ratio"] for row in rows]
        results["models"][model] = {
            "runs": rows, "plain_steps_per_s": statistics.mean(r["plain"] for r in rows),
            "aelab_steps_per_s": statistics.mean(r["aelab"] for r in rows), "ratio_mean": statistics.mean(ratios),
            "ratio_sd": statistics.stdev(ratios) if len(ratios) > 1 else 0.0}
        m = results["models"][model]
        print(f"{model:10s}   mean {m['plain_steps_per_s']:14.1f} {m['aelab_steps_per_s']:14.1f} "
              f"{m['ratio_mean']:7.3f} +- {m['ratio_sd']:.3f}", flush=True)
    if args.profile:
        _, summary = run_aelab(args.models[0], args.steps, args.warmup, args.log_dir, profile=True)
        results["profile"] = summary
        print(summary)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
