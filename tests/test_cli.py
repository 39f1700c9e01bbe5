"""End-to-end CLI runs on a tiny synthetic data set (seconds)."""

from pathlib import Path

import pytest
import torch
import yaml

from aelab.cli import main

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(tmp_path: Path, data_dir: Path, recipe: str = "cae.yaml", **model) -> Path:
    """The shipped recipe with a tiny model, synthetic data and a temporary log directory."""
    config = yaml.safe_load((ROOT / "configs" / recipe).read_text())
    config["trainer"].update(max_epochs=2, limit_train_batches=3, limit_val_batches=2,
                             enable_progress_bar=False, enable_model_summary=False)
    config["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp_path / "logs")
    config["model"]["init_args"].update(channels=4, latent_dim=4, hidden_dim=16, **model)
    config["data"]["init_args"].update(data_dir=str(data_dir), download=False, verify=False,
                                        batch_size=32, val_size=60)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def event_scalars_and_images(log_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = sorted(log_dir.rglob("events.out.tfevents.*"))
    assert events, f"no event file under {log_dir}"
    tags = {"scalars": set(), "images": set()}
    for e in events:
        acc = EventAccumulator(str(e), size_guidance={"images": 0})
        acc.Reload()
        tags["scalars"] |= set(acc.Tags()["scalars"])
        tags["images"] |= set(acc.Tags()["images"])
    return tags


def test_cli_fit_tests_best_checkpoint_and_logs(tmp_path, fake_data_dir, capsys):
    config = tiny_config(tmp_path, fake_data_dir)
    main(["fit", "--config", str(config)])
    out = capsys.readouterr().out
    assert "aelab test results" in out and "test_mse = " in out
    run = tmp_path / "logs" / "cae" / "version_0"
    ckpts = {p.name for p in (run / "checkpoints").iterdir()}
    assert "last.ckpt" in ckpts and any(n.startswith("best-") for n in ckpts)
    tags = event_scalars_and_images(run)
    assert {"train_loss", "val_loss", "test_mse"} <= tags["scalars"]
    assert "val/reconstructions" in tags["images"]
    # the checkpoint re-creates its model and loads with weights_only=True
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["latent_dim"] == 4
    # `aelab test --ckpt_path` evaluates a saved checkpoint
    main(["test", "--config", str(config), "--ckpt_path", str(run / "checkpoints" / "last.ckpt")])
    assert "test_mse = " in capsys.readouterr().out


def test_cli_config_typo_is_reported(tmp_path, fake_data_dir, capsys):
    config = tiny_config(tmp_path, fake_data_dir, latnet_dim=3)
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(config)])
    assert "latnet_dim" in capsys.readouterr().err


def test_cli_print_config_shows_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(ROOT / "configs" / "cae.yaml"), "--print_config"])
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "weight_decay" in out and "val_size: 5000" in out and "max_epochs" in out


@pytest.mark.parametrize("recipe", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_every_shipped_config_parses(recipe, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(ROOT / "configs" / recipe), "--print_config"])
    assert exit_info.value.code in (0, None)
    assert "class_path: aelab.models." in capsys.readouterr().out
