"""Few-label classification: supervised from scratch vs frozen probe vs fine-tuned vs semi-supervised.

For each data set (Fashion-MNIST, 10 classes; Fashion-5 protocol, 5 classes) a VAE is pretrained once
on all training images (no labels); then, for each number of labels per class, four models that
share one encoder design are trained on the same seeded labeled subset and tested:

* ``supervised``: EncoderClassifier from scratch (with kornia augmentation),
* ``probe``: EncoderClassifier on the frozen pretrained encoder (head only),
* ``finetune``: EncoderClassifier from the pretrained encoder, fine-tuned (encoder lr = head lr, as in
  ``configs/finetune.yaml``),
* ``semisup``: SemiSupervisedVAE trained on paired unlabeled/labeled batches, with the FixMatch
  pseudo-label term (``--consistency``) of ``configs/fashion5_semisup.yaml``.

Test accuracy counts in-distribution test images only. Prints a table, writes JSON and a plot of
accuracy vs labels per class.

    python benchmarks/few_labels.py --datasets fashion5 --labels all
    python benchmarks/few_labels.py --datasets fmnist --labels 10 100 all --pretrain_epochs 10
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import matplotlib
import torch

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from aelab.checkpoint import PretrainedEncoder  # noqa: E402
from aelab.data import Fashion5DataModule, FashionMNISTDataModule  # noqa: E402
from aelab.models import VAE, EncoderClassifier, SemiSupervisedVAE  # noqa: E402

ARCH = dict(channels=16, latent_dim=16, hidden_dim=256, batch_norm=True)


def datamodule(dataset: str, labels: int | None, seed: int, **kw):
    if dataset == "fmnist":
        return FashionMNISTDataModule(data_dir=None, labels_per_class=labels, seed=seed, **kw)
    return Fashion5DataModule(data_dir=None, labels_per_class=labels, seed=seed, **kw)


def fit(model, dm, max_epochs: int | None = None, max_steps: int = -1) -> float:
    start = time.process_time()
    pl.Trainer(max_epochs=max_epochs, max_steps=max_steps, logger=False, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
               limit_val_batches=0).fit(model, dm)
    return time.process_time() - start


def test_accuracy(model, dm) -> float:
    result = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False).test(
        model, dm, verbose=False)
    return float(result[0]["test_acc"])


def run(dataset: str, label_counts: list[int | None], args) -> dict:
    num_classes = 10 if dataset == "fmnist" else 5
    pl.seed_everything(args.seed, workers=True)
    vae = VAE(**ARCH, scheduler="onecycle", kl_warmup_epochs=2, log_images=0)
    pre_cpu = fit(vae, datamodule(dataset, None, args.seed), max_epochs=args.pretrain_epochs)
    ckpt = Path(tempfile.mkdtemp()) / f"{dataset}_vae.ckpt"
    torch.save({"state_dict": vae.state_dict(), "hyper_parameters": dict(vae.hparams)}, ckpt)
    out = {"pretrain_epochs": args.pretrain_epochs, "pretrain_cpu_s": pre_cpu, "results": {}}
    for labels in label_counts:
        key = "all" if labels is None else str(labels)
        row = out["results"][key] = {}
        dm_lab = datamodule(dataset, labels, args.seed, labeled_only=True, batch_size=128)
        dm_lab.setup()
        batches = math.ceil(len(dm_lab.labeled_train_set) / 128)
        steps = max(args.min_steps, min(args.max_epochs * batches, args.max_steps))
        row["n_labeled"] = len(dm_lab.labeled_train_set)
        models = {
            "supervised": lambda: EncoderClassifier(num_classes=num_classes, **ARCH, augment=True, dropout=0.2,
                                                    lr=2e-3, scheduler="onecycle"),
            "probe": lambda: EncoderClassifier(num_classes=num_classes, encoder=PretrainedEncoder(str(ckpt)), freeze_encoder=True,
                                               lr=2e-3, scheduler="onecycle"),
            "finetune": lambda: EncoderClassifier(num_classes=num_classes, encoder=PretrainedEncoder(str(ckpt)), augment=True,
                                                  dropout=0.2, lr=2e-3, encoder_lr=2e-3, scheduler="onecycle"),
        }
        for name, make in models.items():
            pl.seed_everything(args.seed, workers=True)
            model = make()
            cpu = fit(model, dm_lab, max_steps=steps)
            row[name] = {"test_acc": test_accuracy(model, dm_lab), "cpu_s": cpu, "steps": steps}
            print(f"{dataset} labels/class={key:>4} {name:<10} acc {row[name]['test_acc']:.4f} "
                  f"({steps} steps, {cpu:.0f} CPU s)", flush=True)
        if not args.skip_semisup:
            pl.seed_everything(args.seed, workers=True)
            dm_semi = datamodule(dataset, labels, args.seed, labeled_batch_size=64, batch_size=128)
            model = SemiSupervisedVAE(num_classes=num_classes, **ARCH, alpha=args.alpha,
                                      consistency=args.consistency, scheduler="onecycle", kl_warmup_epochs=2,
                                      log_images=0)
            cpu = fit(model, dm_semi, max_epochs=args.semisup_epochs)
            row["semisup"] = {"test_acc": test_accuracy(model, dm_semi), "cpu_s": cpu, "epochs": args.semisup_epochs}
            print(f"{dataset} labels/class={key:>4} {'semisup':<10} acc {row['semisup']['test_acc']:.4f} "
                  f"({args.semisup_epochs} epochs, {cpu:.0f} CPU s)", flush=True)
    return out


def plot(results: dict) -> Figure:
    fig = Figure(figsize=(6 * len(results), 4))
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    for ax, (dataset, r) in zip(axes, results.items()):
        keys = list(r["results"])
        xs = [r["results"][k]["n_labeled"] for k in keys]
        for name in ("supervised", "probe", "finetune", "semisup"):
            if all(name in r["results"][k] for k in keys):
                ax.plot(xs, [r["results"][k][name]["test_acc"] for k in keys], "o-", label=name)
        ax.set(xscale="log", xlabel="labeled training images", ylabel="test accuracy", title=dataset)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["fashion5", "fmnist"], choices=["fashion5", "fmnist"])
    parser.add_argument("--labels", nargs="+", default=["10", "100", "all"], help="labels per class, or 'all'")
    parser.add_argument("--pretrain_epochs", type=int, default=10)
    parser.add_argument("--semisup_epochs", type=int, default=15)
    parser.add_argument("--max_epochs", type=int, default=15, help="epochs over the labeled images (capped by max_steps)")
    parser.add_argument("--min_steps", type=int, default=300)
    parser.add_argument("--max_steps", type=int, default=6000)
    parser.add_argument("--alpha", type=float, default=100.0)
    parser.add_argument("--consistency", type=float, default=1.0,
                        help="FixMatch pseudo-label weight of the semi-supervised VAE (as in configs/fashion5_semisup.yaml)")
    parser.add_argument("--skip_semisup", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="benchmarks/results/few_labels.json")
    args = parser.parse_args()
    counts = [None if v == "all" else int(v) for v in args.labels]
    results = {d: run(d, counts, args) for d in args.datasets}
    print(f"\n{'dataset':<9}{'labels/class':>13}{'n_labeled':>10}" + "".join(
        f"{m:>12}" for m in ("supervised", "probe", "finetune", "semisup")))
    for d, r in results.items():
        for k, row in r["results"].items():
            print(f"{d:<9}{k:>13}{row['n_labeled']:>10}" + "".join(
                f"{row[m]['test_acc']:>12.4f}" if m in row else f"{'-':>12}"
                for m in ("supervised", "probe", "finetune", "semisup")))
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    plot(results).savefig(out.with_suffix(".png"), dpi=110)
    print(f"\nwrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
