"""Inference speed of a detector: eager PyTorch, TorchScript and ONNX Runtime on this machine, items per
second at batch 1 and batch 256, on the same raw test inputs (preprocessing, network and scorer: the
graph `aelab export` writes).

    python benchmarks/inference.py                                   # the Fashion-MNIST CAE, configs/cae.yaml
    python benchmarks/inference.py --config configs/caltech_airplanes_cae.yaml --ckpt <best.ckpt>

Without ``--ckpt`` the model keeps its initial weights (speed does not depend on them) and its scorer is
calibrated on a part of the data. Each measurement runs ``--items`` items after one warm-up batch and is
repeated ``--repeats`` times (the best is reported; all are in the JSON). Both runtimes use the same
number of threads (``torch.get_num_threads()``). Writes ``benchmarks/results/inference.json`` (or ``--output``).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import aelab  # noqa: F401  (flush-to-zero before torch starts its threads)
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def build(config: str, ckpt: str | None, score: str):
    """Model (with a calibrated scorer of ``score``) and datamodule of a recipe."""
    from aelab.checkpoint import load_weights
    from aelab.cli import build as build_cli
    from aelab.scoring import Scorer, attach_scorer, calibrate

    recipe = yaml.safe_load(Path(config).read_text())
    recipe.setdefault("trainer", {}).update(logger=False)
    cli = build_cli(recipe, run=False)
    model, dm = cli.model, cli.datamodule
    if ckpt:
        load_weights(model, ckpt, dm)
    model.scorer = None
    attach_scorer(model, Scorer(score))
    dm.setup("fit")
    calibrate(model.scorer, model.eval(), dm.train_set.subset(torch.arange(min(2000, len(dm.train_set)))),
              dm.normal_val_set)
    dm.setup("test")
    return model, dm


def rate(fn, raw: torch.Tensor, batch: int, items: int) -> float:
    """Items per second of ``fn`` over ``items`` items in batches of ``batch`` (after one warm-up batch)."""
    fn(raw[:batch])
    n, start = 0, time.perf_counter()
    while n < items:
        part = raw[n % len(raw) : n % len(raw) + batch]
        if len(part) < batch:
            part = raw[:batch]
        fn(part)
        n += batch
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "cae.yaml"))
    parser.add_argument("--ckpt", default=None)
    parser.add_argument("--score", default="mse")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--items", type=int, default=2048, help="items timed per measurement (batch 1: a tenth)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "inference.json"))
    args = parser.parse_args()

    import logging
    import warnings

    import onnxruntime

    from aelab.commands.export import DetectorGraph, export_graph, metadata
    from aelab.commands.exported import ExportedModel

    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    model, dm = build(args.config, args.ckpt, args.score)
    graph = DetectorGraph(dm.preprocessor(), model.eval()).eval()
    raw = dm.raw_test_inputs()[:2048]
    threads = torch.get_num_threads()
    runners = {}
    with tempfile.TemporaryDirectory() as tmp:
        meta = metadata(model, dm, args.ckpt)
        export_graph(graph, raw[:8], Path(tmp) / "d.onnx", "onnx", meta)
        export_graph(graph, raw[:8], Path(tmp) / "d.pt", "torchscript", meta)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(str(Path(tmp) / "d.onnx"), options, providers=["CPUExecutionProvider"])
        scripted = ExportedModel(Path(tmp) / "d.pt").module

        def eager(x):
            with torch.inference_mode():
                return graph(x)

        def torchscript(x):
            with torch.inference_mode():
                return scripted(x)

        def onnx_runtime(x):
            return session.run(None, {"input": x.numpy()})

        runners = {"eager": eager, "torchscript": torchscript, "onnxruntime": onnx_runtime}
        results = {"config": args.config, "checkpoint": args.ckpt, "score": args.score,
                   "input_shape": list(raw.shape[1:]), "threads": threads, "torch": torch.__version__,
                   "onnxruntime": onnxruntime.__version__, "device": platform.processor() or platform.machine(),
                   "items_per_second": {}}
        print(f"{'runtime':12s} " + " ".join(f"{'batch ' + str(b):>12s}" for b in args.batches) + "   (items/s, best of "
              f"{args.repeats})", flush=True)
        for name, fn in runners.items():
            row = {}
            for b in args.batches:
                items = args.items if b > 1 else max(64, args.items // 10)
                runs = [rate(fn, raw, b, items) for _ in range(args.repeats)]
                row[str(b)] = {"best": max(runs), "runs": runs}
            results["items_per_second"][name] = row
            print(f"{name:12s} " + " ".join(f"{row[str(b)]['best']:12.0f}" for b in args.batches), flush=True)
    big = str(max(args.batches))
    ratio = results["items_per_second"]["onnxruntime"][big]["best"] / results["items_per_second"]["eager"][big]["best"]
    results[f"onnxruntime_over_eager_batch_{big}"] = ratio
    print(f"ONNX Runtime / eager at batch {big}: {ratio:.2f}x")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
