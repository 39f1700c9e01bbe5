"""End-to-end CLI runs on a tiny synthetic data set (seconds)."""

import pytest
import torch

from aelab.cli import main

from helpers import ROOT, event_tags, printed_metrics, tiny_config


def test_cli_fit_tests_best_checkpoint_and_logs(tmp_path, fake_data_dir, capsys):
    config = tiny_config(tmp_path, fake_data_dir)
    main(["fit", "--config", str(config)])
    fit_metrics = printed_metrics(capsys.readouterr().out)
    assert set(fit_metrics) == {"test_loss", "test_mse"} and fit_metrics["test_loss"] == fit_metrics["test_mse"]
    run = tmp_path / "logs" / "cae" / "version_0"
    ckpts = {p.name for p in (run / "checkpoints").iterdir()}
    assert "last.ckpt" in ckpts and any(n.startswith("best-") for n in ckpts)
    tags = event_tags(run)
    assert {"train_loss", "val_loss", "test_mse"} <= tags["scalars"]
    assert "val/reconstructions" in tags["images"]
    # the checkpoint re-creates its model and loads with weights_only=True
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["latent_dim"] == 4
    # `aelab test --ckpt_path` evaluates a saved checkpoint: the best one gives the numbers fit printed
    best = next((run / "checkpoints").glob("best-*.ckpt"))
    main(["test", "--config", str(config), "--ckpt_path", str(best)])
    assert printed_metrics(capsys.readouterr().out) == fit_metrics


def test_cli_config_typo_is_reported(tmp_path, fake_data_dir, capsys):
    config = tiny_config(tmp_path, fake_data_dir, latnet_dim=3)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "latnet_dim" in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("aelab: error:")  # not 60 lines of usage


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
