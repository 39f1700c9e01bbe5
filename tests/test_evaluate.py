"""`aelab evaluate` end to end on a tiny config (seconds)."""

import csv
import json

import pytest
import yaml

from aelab.checkpoint import read_checkpoint
from aelab.cli import main

from helpers import fashion5_config, tiny_config


def test_evaluate_vae_writes_metrics_and_figures(tmp_path, fake_data_dir, capsys):
    config = fashion5_config(tmp_path, fake_data_dir, "fashion5_vae.yaml")
    main(["fit", "--config", str(config)])
    out = capsys.readouterr().out
    assert "test_auroc = " in out and "test_auprc = " in out
    ckpt = tmp_path / "logs" / "fashion5_vae" / "version_0" / "checkpoints" / "last.ckpt"
    out_dir = tmp_path / "eval"
    main(["evaluate", "--config", str(config), "--ckpt_path", str(ckpt), "--output_dir", str(out_dir),
          "--k_samples", "2", "--iwae_samples", "4"])
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert set(metrics["scores"]) == {"mse", "local_error", "neg_elbo", "neg_elbo_k", "iwae", "recon_prob", "complexity",
                                      "mahalanobis", "knn"}
    r = metrics["scores"]["neg_elbo"]
    assert 0.0 <= r["auroc"] <= 1.0 and set(r["per_type"]) == {"occlusion", "novel_class"}
    youden = r["thresholds"]["youden"]
    assert youden["tp"] + youden["fn"] == 40 and youden["tn"] + youden["fp"] == 60
    for name in ("roc", "pr", "scores_neg_elbo", "most_anomalous", "least_anomalous", "random_normal",
                 "random_anomalous"):
        assert (out_dir / f"{name}.png").stat().st_size > 1000
    assert "metrics.json" in (out_dir / "report.md").read_text()
    assert (out_dir / "scored.ckpt").exists()


def test_evaluate_cae_subset_of_scores_then_predict_gives_same_scores(tmp_path, fake_data_dir, capsys):
    config = fashion5_config(tmp_path, fake_data_dir, "fashion5_cae.yaml")
    cfg = yaml.safe_load(config.read_text())
    cfg["scorer"] = {"score": "knn"}
    config.write_text(yaml.safe_dump(cfg))
    main(["fit", "--config", str(config), "--test_after_fit", "false"])
    ckpt = tmp_path / "logs" / "fashion5_cae" / "version_0" / "checkpoints" / "last.ckpt"
    # the run's own config.yaml (written by fit, with fit's weights_only key) works for evaluate
    run_config = ckpt.parent.parent / "config.yaml"
    assert "weights_only" in run_config.read_text()
    main(["evaluate", "--config", str(run_config), "--ckpt_path", str(ckpt), "--output_dir", str(tmp_path / "e"),
          "--scores", "[mse, knn]"])
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert set(metrics["scores"]) == {"mse", "knn"} and metrics["primary_score"] == "knn"
    saved = read_checkpoint(tmp_path / "e" / "scored.ckpt")["state_dict"]["scorer._extra_state"]
    assert saved["score"] == "knn" and saved["settings"] == {"k": 5} and saved["stats_fitted"]
    # the latent statistics travel in scored.ckpt: `aelab predict` reproduces evaluate's scores
    main(["predict", "--config", str(config), "--ckpt_path", str(tmp_path / "e" / "scored.ckpt")])
    written = tmp_path / "e" / "predict" / "predictions.csv"
    with open(written) as f:
        pred_scores = [float(row["score"]) for row in csv.DictReader(f)]
    with open(tmp_path / "e" / "predictions.csv") as f:
        eval_scores = [float(row["score"]) for row in csv.DictReader(f)]
    assert len(pred_scores) == len(eval_scores) == 100
    assert max(abs(a - b) for a, b in zip(pred_scores, eval_scores)) < 1e-4



def test_transform_recipe_fits_and_evaluates(tmp_path, fake_data_dir, capsys):
    """configs/fashion5_cae_transform.yaml: fit logs the head's accuracy and the `transform` score's
    test AUROC; evaluate reports the `transform` score next to the autoencoder's own."""
    config = fashion5_config(tmp_path, fake_data_dir, "fashion5_cae_transform.yaml")
    main(["fit", "--config", str(config)])
    out = capsys.readouterr().out
    assert "test_auroc = " in out and "test_transform_acc = " in out
    ckpt = tmp_path / "logs" / "fashion5_cae_transform" / "version_0" / "checkpoints" / "last.ckpt"
    main(["evaluate", "--config", str(config), "--ckpt_path", str(ckpt), "--output_dir", str(tmp_path / "e")])
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["primary_score"] == "transform"
    assert {"transform", "mse", "knn"} <= set(metrics["scores"]) and 0 <= metrics["scores"]["transform"]["auroc"] <= 1
    assert (tmp_path / "e" / "scores_transform.png").stat().st_size > 1000

def test_semisupervised_fit_and_evaluate_anomaly_classes(tmp_path, fake_data_dir, capsys):
    config = fashion5_config(tmp_path, fake_data_dir, "fashion5_semisup.yaml")
    cfg = yaml.safe_load(config.read_text())
    cfg["data"]["init_args"]["labeled_batch_size"] = 8
    config.write_text(yaml.safe_dump(cfg))
    main(["fit", "--config", str(config)])
    out = capsys.readouterr().out
    assert "test_acc = " in out and "final-epoch" in out  # the final epoch's (EMA) weights are tested
    ckpt = next((tmp_path / "logs" / "fashion5_semisup" / "version_0" / "checkpoints").glob("final-*.ckpt"))
    main(["evaluate", "--config", str(config), "--ckpt_path", str(ckpt), "--output_dir", str(tmp_path / "e"),
          "--scores", "[neg_elbo, mse]"])
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    counts = metrics["anomaly_predicted_classes"]
    assert list(counts) == ["Trouser", "Sandal", "Sneaker", "Bag", "Ankle boot"]
    assert sum(counts.values()) == metrics["n_anomalies"] == 40
    rows = (tmp_path / "e" / "predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + 100 and "flagged_youden" in rows[0] and "predicted_name" in rows[0]
    assert (tmp_path / "e" / "anomaly_classes.png").exists()


def test_supervised_and_finetune_recipes_run(tmp_path, fake_data_dir, capsys):
    cae = tiny_config(tmp_path / "cae", fake_data_dir)
    main(["fit", "--config", str(cae), "--test_after_fit", "false"])
    for recipe in ("supervised.yaml", "finetune.yaml"):
        path = tiny_config(tmp_path / recipe, fake_data_dir, recipe)
        cfg = yaml.safe_load(path.read_text())
        cfg["data"]["init_args"]["labels_per_class"] = 5
        if recipe == "finetune.yaml":
            for key in ("channels", "latent_dim", "hidden_dim"):
                cfg["model"]["init_args"].pop(key)
            cfg["model"]["init_args"]["encoder"]["init_args"]["path"] = str(
                tmp_path / "cae" / "logs" / "cae" / "*" / "checkpoints" / "last.ckpt")
        path.write_text(yaml.safe_dump(cfg))
        main(["fit", "--config", str(path)])
        assert "test_acc = " in capsys.readouterr().out


def test_evaluate_rejects_unknown_local_residual(tmp_path, fake_data_dir):
    config = fashion5_config(tmp_path, fake_data_dir, "fashion5_cae.yaml")
    main(["fit", "--config", str(config), "--test_after_fit", "false"])
    ckpt = tmp_path / "logs" / "fashion5_cae" / "version_0" / "checkpoints" / "last.ckpt"
    with pytest.raises(ValueError, match="residual must be one of"):
        main(["evaluate", "--config", str(config), "--ckpt_path", str(ckpt), "--local_residual", "signed"])
