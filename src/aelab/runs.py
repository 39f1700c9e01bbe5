"""One place for the jobs every command shares: where a run's files go (run folders), the run's
TensorBoard writer, batched inference over an in-memory data set, and the CSV writer.

Run folder of a checkpoint: ``<run>/checkpoints/<name>.ckpt`` -> ``<run>`` (a checkpoint elsewhere:
its own folder). Reports go to ``<run>/<command>`` (``evaluate``, ``latent``, ``predict``), never to a
new ``version_N``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset


def run_dir(ckpt_path: str | Path) -> Path:
    """The run folder of a checkpoint: ``<run>`` for ``<run>/checkpoints/x.ckpt``, else the checkpoint's folder."""
    ckpt = Path(ckpt_path)
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent


def output_dir(command: str, ckpt_path: str | Path | None, given: str | Path | None = None) -> Path:
    """Where ``command`` writes: ``given`` if set, else ``<run>/<command>`` beside the checkpoint's run
    (``./<command>`` without a checkpoint). The folder is created."""
    out = Path(given) if given else (run_dir(ckpt_path) / command if ckpt_path else Path(command))
    out.mkdir(parents=True, exist_ok=True)
    return out


def tensorboard_writer(ckpt_path: str | Path | None, fallback_dir: str | Path):
    """A TensorBoard ``SummaryWriter`` into the checkpoint's run folder (so a report's figures sit next to
    the training curves of the model they describe), or ``fallback_dir/tensorboard`` without a
    checkpoint. Never a new ``version_N``. The caller closes it."""
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(run_dir(ckpt_path) if ckpt_path else Path(fallback_dir) / "tensorboard"))


def model_device(model: torch.nn.Module) -> torch.device:
    """Where the model's parameters are (the CPU for a model without parameters)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def batches(dataset: Dataset, batch_size: int, indices=None) -> Iterator[dict]:
    """Dict batches of ``dataset`` (all items, or ``indices`` in that order): whole index batches for
    in-memory data sets that take a list of indices, a collating DataLoader otherwise."""
    n = len(dataset) if indices is None else len(indices)
    order = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
    if getattr(dataset, "takes_index_lists", False):
        for start in range(0, n, batch_size):
            yield dataset[order[start : start + batch_size]]
    else:
        yield from DataLoader(Subset(dataset, order), batch_size=batch_size, shuffle=False)


@torch.no_grad()
def infer(fn: Callable[[torch.Tensor], torch.Tensor], dataset: Dataset, batch_size: int = 256,
          device: torch.device | str = "cpu", indices=None) -> torch.Tensor:
    """``fn`` applied to the inputs of every batch of ``dataset`` (on ``device``), concatenated on the
    CPU in dataset order: e.g. scores ``(N,)`` or codes ``(N, D)``.

    Raises:
        ValueError: for an empty data set.
    """
    out = [fn(b["input"].to(device)).detach().cpu() for b in batches(dataset, batch_size, indices)]
    if not out:
        raise ValueError("nothing to run the model on: the data set is empty")
    return torch.cat(out)


def write_csv(path: str | Path, columns: dict[str, list]) -> Path:
    """A CSV file with one column per entry (pandas ``DataFrame.to_csv``; floats with 10 significant
    digits), written to a temporary file and renamed. The one writer of ``predictions.csv`` files."""
    import os
    import tempfile

    import pandas as pd

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        pd.DataFrame(columns).to_csv(tmp, index=False, float_format="%.10g")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


RESUME_CHECKPOINT = "resume"  # <run>/checkpoints/resume.ckpt: the state after the newest finished epoch


def version_number(run: Path) -> int:
    """The number of a ``version_N`` folder (``-1`` for other names)."""
    return int(run.name[8:]) if run.name.startswith("version_") and run.name[8:].isdigit() else -1


def newest_resumable_run(save_dir: str | Path, name: str) -> Path | None:
    """The newest run folder ``<save_dir>/<name>/<version>`` (highest ``version_N``, else newest by time)
    that holds ``checkpoints/resume.ckpt``, or ``None``."""
    root = Path(save_dir) / name
    runs = [p for p in root.iterdir() if (p / "checkpoints" / f"{RESUME_CHECKPOINT}.ckpt").is_file()] \
        if root.is_dir() else []
    return max(runs, key=lambda p: (version_number(p), p.stat().st_mtime)) if runs else None


def run_parts(ckpt_path: str | Path) -> tuple[Path, str, str] | None:
    """``(save_dir, name, version)`` of a checkpoint ``<save_dir>/<name>/<version>/checkpoints/x.ckpt``
    written by a TensorBoard-logged run, else ``None``."""
    ckpt = Path(ckpt_path)
    if ckpt.parent.name != "checkpoints" or len(ckpt.parents) < 4:
        return None
    run = ckpt.parent.parent
    return run.parent.parent, run.parent.name, run.name
