"""Nothing lost, nothing silent: resume, atomic checkpoints, run folders, clear checkpoint errors,
validation without labels, and multi-process (DDP) training on the CPU."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from aelab.checkpoint import AtomicCheckpointIO, CheckpointError, read_checkpoint, save_atomic
from aelab.cli import main
from aelab.data import DataError, FashionMNISTDataModule

from helpers import fashion5_config, tiny_config

ROOT = Path(__file__).resolve().parents[1]


def runs_of(logs: Path, name: str) -> list[str]:
    return sorted(p.name for p in (logs / name).iterdir())


def test_resume_last_continues_the_newest_run_in_its_folder(tmp_path, fake_data_dir, capsys):
    config = tiny_config(tmp_path, fake_data_dir, scheduler="none")  # a one-cycle schedule fixes its length
    main(["fit", "--config", str(config), "--test_after_fit", "false"])
    run = tmp_path / "logs" / "cae" / "version_0"
    assert read_checkpoint(run / "checkpoints" / "resume.ckpt")["epoch"] == 1  # the state after every epoch
    capsys.readouterr()
    main(["fit", "--config", str(config), "--ckpt_path", "last", "--trainer.max_epochs", "4", "--test_after_fit", "false"])
    out = capsys.readouterr().out
    assert f"resuming {run}" in out
    assert runs_of(tmp_path / "logs", "cae") == ["version_0"]  # the same folder, one continuous run
    resumed = read_checkpoint(run / "checkpoints" / "resume.ckpt")
    assert resumed["epoch"] == 3 and resumed["global_step"] == 4 * 3  # 2 epochs more, 3 batches each


def test_resume_without_a_run_is_an_error(tmp_path, fake_data_dir):
    config = tiny_config(tmp_path, fake_data_dir)
    with pytest.raises(CheckpointError, match="no run of 'cae'"):
        main(["fit", "--config", str(config), "--ckpt_path", "last"])


@pytest.mark.slow
def test_kill_9_mid_fit_then_resume(tmp_path, fake_data_dir):
    """SIGKILL a fit after its first finished epoch; `--ckpt_path last` picks up the same run folder at
    the next epoch and finishes it."""
    config = tiny_config(tmp_path, fake_data_dir, limit_batches=8, max_epochs=30)
    cmd = [sys.executable, "-m", "aelab", "fit", "--config", str(config), "--test_after_fit", "false"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    resume = tmp_path / "logs" / "cae" / "version_0" / "checkpoints" / "resume.ckpt"
    deadline = time.time() + 120
    while time.time() < deadline and not (resume.exists() and read_checkpoint(resume)["epoch"] >= 1):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = read_checkpoint(resume)["epoch"]
    assert killed_at < 29
    subprocess.run(cmd + ["--ckpt_path", "last", "--trainer.max_epochs", str(killed_at + 3)], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert runs_of(tmp_path / "logs", "cae") == ["version_0"]
    assert read_checkpoint(resume)["epoch"] == killed_at + 2


def test_full_disk_never_leaves_a_truncated_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "best.ckpt"
    save_atomic({"state_dict": {"w": torch.ones(3)}}, path)

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, path)
    monkeypatch.undo()
    assert torch.equal(read_checkpoint(path)["state_dict"]["w"], torch.ones(3))  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["best.ckpt"]  # no temporary file left behind

    def zip_writer_fails(obj, f, *args, **kwargs):  # what torch does on a real full disk
        try:
            raise OSError(28, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 176192 vs 176080")

    monkeypatch.setattr(torch, "save", zip_writer_fails)
    with pytest.raises(OSError, match=r"could not write .*best.ckpt \(No space left on device\)"):
        save_atomic({"state_dict": {"w": torch.zeros(3)}}, path)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["best.ckpt"]


@pytest.mark.parametrize("command", ["test", "predict", "evaluate"])
def test_random_bytes_are_not_called_an_unsafe_checkpoint(tmp_path, fake_data_dir, command):
    config = fashion5_config(tmp_path, fake_data_dir, "fashion5_cae.yaml")
    bad = tmp_path / "random.ckpt"
    bad.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint") as info:
        main([command, "--config", str(config), "--ckpt_path", str(bad)])
    assert "weights_only=False" not in str(info.value)


def test_checkpoint_of_another_model_class_is_refused(tmp_path, fake_data_dir):
    vae = tiny_config(tmp_path / "vae", fake_data_dir, "vae.yaml")
    main(["fit", "--config", str(vae), "--test_after_fit", "false", "--trainer.max_epochs", "1"])
    ckpt = next((tmp_path / "vae" / "logs" / "vae" / "version_0" / "checkpoints").glob("best-*.ckpt"))
    cae = tiny_config(tmp_path / "cae", fake_data_dir)
    with pytest.raises(CheckpointError, match="holds a VAE .* the config a CAE"):
        main(["test", "--config", str(cae), "--ckpt_path", str(ckpt)])


def test_partial_data_dir_is_not_mixed_with_another_copy(tmp_path, fake_data_dir):
    partial = tmp_path / "partial"
    partial.mkdir()
    for f in fake_data_dir.glob("t10k-*"):
        (partial / f.name).write_bytes(f.read_bytes())
    dm = FashionMNISTDataModule(str(partial), download=False, verify=False)
    with pytest.raises(DataError, match=r"holds only some .*train-images-idx3-ubyte"):
        dm.setup("fit")


def test_a_fit_that_fails_in_set_up_leaves_no_run_folder(tmp_path, fake_data_dir):
    partial = tmp_path / "partial"
    partial.mkdir()
    for f in fake_data_dir.glob("t10k-*"):
        (partial / f.name).write_bytes(f.read_bytes())
    config = tiny_config(tmp_path, fake_data_dir)
    main(["fit", "--config", str(config), "--trainer.max_epochs", "1", "--test_after_fit", "false"])
    with pytest.raises(DataError, match="holds only some"):
        main(["fit", "--config", str(config), "--data.init_args.data_dir", str(partial),
              "--data.init_args.verify", "false"])
    assert runs_of(tmp_path / "logs", "cae") == ["version_0"]  # no version_1 holding one event file


@pytest.mark.slow
def test_commands_after_fit_make_no_new_run_folders(tmp_path, fake_data_dir):
    config = fashion5_config(tmp_path, fake_data_dir, "fashion5_cae.yaml")
    main(["fit", "--config", str(config)])
    best = next((tmp_path / "logs" / "fashion5_cae" / "version_0" / "checkpoints").glob("best-*.ckpt"))
    main(["test", "--config", str(config), "--ckpt_path", str(best)])
    main(["evaluate", "--config", str(config), "--ckpt_path", str(best), "--scores", "[mse]"])
    main(["predict", "--ckpt_path", str(best)])  # the run's config.yaml: still fit's, `test` did not replace it
    main(["latent", "--config", str(config), "--ckpt_path", str(best), "--max_points", "20", "--perplexity", "5",
          "--tsne_iterations", "250", "--n_samples", "4", "--split", "val"])
    assert runs_of(tmp_path / "logs", "fashion5_cae") == ["version_0"]
    run = tmp_path / "logs" / "fashion5_cae" / "version_0"
    assert {"evaluate", "predict", "latent", "checkpoints"} <= {p.name for p in run.iterdir()}
    assert (run / "predict" / "predictions.csv").is_file()
    # an explicit default_root_dir moves the recipe's logs (it used to be ignored without a word)
    main(["fit", "--config", str(config), "--trainer.default_root_dir", str(tmp_path / "elsewhere"),
          "--trainer.max_epochs", "1", "--test_after_fit", "false"])
    assert (tmp_path / "elsewhere" / "fashion5_cae" / "version_0" / "checkpoints").is_dir()


def test_semisup_epoch_without_labeled_validation_images(tmp_path, fake_data_dir, capsys):
    """The validation batches may cover only unlabeled images (limit_val_batches): val_acc is NaN with a
    warning and the val_acc checkpoint callback keeps working instead of failing at the end of the epoch."""
    config = fashion5_config(tmp_path, fake_data_dir, "fashion5_semisup.yaml")
    cfg = yaml.safe_load(config.read_text())
    cfg["data"]["init_args"].update(labeled_batch_size=8, batch_size=8)  # batches 1-2 of 38: unlabeled
    cfg["trainer"].update(limit_val_batches=2, max_epochs=1)  # (an int 1 would read as 100 %)
    config.write_text(yaml.safe_dump(cfg))
    with pytest.warns(UserWarning, match="no labeled image in this epoch's validation batches"):
        main(["fit", "--config", str(config), "--test_after_fit", "false"])
    assert list((tmp_path / "logs" / "fashion5_semisup" / "version_0" / "checkpoints").glob("best-*.ckpt"))


@pytest.mark.slow
def test_log_lines_instead_of_a_progress_bar(tmp_path, fake_data_dir):
    config = tiny_config(tmp_path, fake_data_dir, limit_batches=4)
    cmd = [sys.executable, "-m", "aelab", "fit", "--config", str(config), "--test_after_fit", "false",
           "--trainer.enable_progress_bar", "true"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    assert "epoch 1 done" in out.stdout and "train_loss" in out.stdout
    assert "\r" not in out.stdout + out.stderr  # no bar redrawing itself


@pytest.mark.slow
def test_ddp_two_processes_end_to_end(tmp_path, fake_data_dir):
    """fit (test after fit), evaluate and latent with `--trainer.strategy ddp --trainer.devices 2` on the
    CPU (gloo): one run folder, one best checkpoint, synchronised metrics, a test AUROC from all ranks."""
    config = fashion5_config(tmp_path, fake_data_dir, "fashion5_cae.yaml")
    ddp = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]
    fit = subprocess.run([sys.executable, "-m", "aelab", "fit", "--config", str(config), *ddp], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert fit.stdout.count("aelab test results") == 1 and "test_auroc = " in fit.stdout
    checkpoints = tmp_path / "logs" / "fashion5_cae" / "version_0" / "checkpoints"
    assert runs_of(tmp_path / "logs", "fashion5_cae") == ["version_0"]
    assert len(list(checkpoints.glob("best-*.ckpt"))) == 1
    best = next(checkpoints.glob("best-*.ckpt"))
    for command, extra in (("evaluate", ["--scores", "[mse, knn]"]),
                           ("latent", ["--max_points", "50", "--perplexity", "5", "--tsne_iterations", "250"])):
        done = subprocess.run([sys.executable, "-m", "aelab", command, "--config", str(config), "--ckpt_path",
                               str(best), *ddp, *extra], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow  # two fresh interpreters that import torch: about 10 s
def test_expected_errors_are_one_line_with_the_remedy(tmp_path, fake_data_dir):
    """From the command line, a bad checkpoint is one short message and exit status 1 (no traceback);
    AELAB_TRACEBACK=1 shows the traceback."""
    config = tiny_config(tmp_path, fake_data_dir)
    bad = tmp_path / "random.ckpt"
    bad.write_bytes(os.urandom(1000))
    cmd = [sys.executable, "-m", "aelab", "test", "--config", str(config), "--ckpt_path", str(bad)]
    env = {k: v for k, v in os.environ.items() if k != "AELAB_TRACEBACK"}
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("aelab: error:")]
    assert len(errors) == 1 and "is not a PyTorch checkpoint" in errors[0] and "aelab fit" in errors[0]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**env, "AELAB_TRACEBACK": "1"})
    assert done.returncode == 1 and "Traceback" in done.stderr
