"""Speed of CPU training with and without flushing subnormal floats to zero.

Trains the same CAE (same seed, same batches) twice with a plain PyTorch loop on Fashion-MNIST,
each in a fresh process: once with ``torch.set_flush_denormal(False)`` (PyTorch's default) and once
with ``True`` (what ``import aelab`` sets; see :mod:`aelab.denormals`). The setting is made before
PyTorch starts its OpenMP threads, and each process checks that a 2-thread op on subnormal values
gives the expected result. Prints the milliseconds per step over each window of steps and the loss,
and writes JSON. The speed-up is the ratio of the two runs' times per step in the same window.

    python benchmarks/denormals.py                    # 3,000 steps of 128 images per setting
    python benchmarks/denormals.py --steps 1000 --window 250
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def run(flush: bool, steps: int, window: int, seed: int, data_dir: str | None) -> list[dict]:
    """One setting, in this process: must be called before any parallel PyTorch operation."""
    torch.set_flush_denormal(flush)
    survivors = (torch.from_numpy(np.full(1_000_000, 1e-39, np.float32)) * 1.0).count_nonzero().item()
    if survivors != (0 if flush else 1_000_000):
        raise RuntimeError(f"flush={flush} did not reach every thread: {survivors} of 1e6 subnormals survive")
    from aelab.data.sources.idx import load_fashion_mnist
    from aelab.models import CAE

    torch.set_flush_denormal(flush)  # importing aelab turned it on in this (main) thread
    images = torch.from_numpy(load_fashion_mnist(data_dir, download=False)[0][:55000]).float().div_(255)
    images = images.unsqueeze(1)
    torch.manual_seed(seed)
    model = CAE(channels=16, latent_dim=16, hidden_dim=256)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-5)
    batches = torch.Generator().manual_seed(seed)
    rows, start = [], time.perf_counter()
    for step in range(1, steps + 1):
        x = images[torch.randint(0, len(images), (128,), generator=batches)]
        loss = torch.mean((model.reconstruct(x) - x) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % window == 0:
            now = time.perf_counter()
            rows.append({"step": step, "ms_per_step": 1e3 * (now - start) / window, "loss": loss.item()})
            print(f"flush={flush!s:5s} steps {step - window + 1:5d}-{step:5d}: "
                  f"{rows[-1]['ms_per_step']:7.1f} ms/step, loss {rows[-1]['loss']:.4f}", flush=True)
            start = now
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--window", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data_dir", default=None)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "denormals.json"))
    p.add_argument("--child", choices=["0", "1"], help=argparse.SUPPRESS)  # one setting, JSON rows on stdout
    args = p.parse_args()
    if args.child is not None:
        rows = run(args.child == "1", args.steps, args.window, args.seed, args.data_dir)
        print("ROWS " + json.dumps(rows), flush=True)
        return
    runs = {}
    for flush in (False, True):
        cmd = [sys.executable, __file__, "--child", str(int(flush)), "--steps", str(args.steps),
               "--window", str(args.window), "--seed", str(args.seed)]
        if args.data_dir:
            cmd += ["--data_dir", args.data_dir]
        out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout
        print("".join(line + "\n" for line in out.splitlines() if not line.startswith("ROWS ")), end="")
        runs[flush] = json.loads(next(line[5:] for line in out.splitlines() if line.startswith("ROWS ")))
    print(f"\n{'steps':>12s} {'no flush ms':>12s} {'flush ms':>9s} {'speed-up':>9s}")
    table = []
    for off, on in zip(runs[False], runs[True]):
        ratio = off["ms_per_step"] / on["ms_per_step"]
        table.append({"step": off["step"], "ms_no_flush": off["ms_per_step"], "ms_flush": on["ms_per_step"],
                      "speedup": ratio, "loss_no_flush": off["loss"], "loss_flush": on["loss"]})
        print(f"{off['step'] - args.window + 1:5d}-{off['step']:5d} {off['ms_per_step']:12.1f} "
              f"{on['ms_per_step']:9.1f} {ratio:8.2f}x")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "args": vars(args), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(), "table": table}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
