"""`aelab evaluate` end to end on a tiny config (seconds)."""

import csv
import json

import pytest
import torch
import yaml

from aelab.checkpoint import read_checkpoint
from aelab.cli import main
from aelab.evaluation import anomaly_metrics

from helpers import fashion5_config, png_size, printed_metrics, tiny_config


def test_evaluate_vae_writes_metrics_and_figures(tmp_path, fake_data_dir, capsys):
    config = fashion5_config(tmp_path, fake_data_dir, "fashion5_vae.yaml")
    main(["fit", "--config", str(config)])
    fit_metrics = printed_metrics(capsys.readouterr().out)
    ckpt = next((tmp_path / "logs" / "fashion5_vae" / "version_0" / "checkpoints").glob("best-*.ckpt"))
    out_dir = tmp_path / "eval"
    main(["evaluate", "--config", str(config), "--ckpt_path", str(ckpt), "--output_dir", str(out_dir),
          "--k_samples", "2", "--iwae_samples", "4"])
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert set(metrics["scores"]) == {"mse", "local_error", "neg_elbo", "neg_elbo_k", "iwae", "recon_prob", "recon_nll", "complexity",
                                      "mahalanobis", "knn"}
    r = metrics["scores"]["neg_elbo"]
    assert set(r["per_type"]) == {"occlusion", "novel_class"}
    # the report's AUROC is the one of its own per-item scores (predictions.csv), the primary score of the
    # model; the fit's test AUROC (same checkpoint, same score, another random draw) is close to it
    with open(out_dir / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    recomputed = anomaly_metrics(torch.tensor([float(x["score"]) for x in rows]),
                                 torch.tensor([int(x["anomaly"]) for x in rows]))
    assert metrics["primary_score"] == "neg_elbo" and r["auroc"] == pytest.approx(recomputed["auroc"], abs=1e-6)
    assert abs(r["auroc"] - fit_metrics["test_auroc"]) < 0.05
    youden = r["thresholds"]["youden"]
    assert youden["tp"] + youden["fn"] == 40 and youden["tn"] + youden["fp"] == 60
    sizes = {name: png_size(out_dir / f"{name}.png") for name in
             ("roc", "pr", "scores_neg_elbo", "most_anomalous", "least_anomalous", "random_normal", "random_anomalous")}
    assert sizes["roc"] == sizes["pr"] == (550, 550) and sizes["scores_neg_elbo"] == (1100, 440)  # inches x 110 dpi
    report = (out_dir / "report.md").read_text()
    assert all(f"![{name}]({name}.png)" in report for name in sizes)
    assert read_checkpoint(out_dir / "scored.ckpt")["state_dict"]["scorer._extra_state"]["score"] == "neg_elbo"


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
    fit_metrics = printed_metrics(capsys.readouterr().out)
    assert {"test_auroc", "test_transform_acc", "test_transform_ce"} <= set(fit_metrics)
    ckpt = next((tmp_path / "logs" / "fashion5_cae_transform" / "version_0" / "checkpoints").glob("best-*.ckpt"))
    main(["evaluate", "--config", str(config), "--ckpt_path", str(ckpt), "--output_dir", str(tmp_path / "e")])
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["primary_score"] == "transform" and {"transform", "mse", "knn"} <= set(metrics["scores"])
    # the transform score is deterministic: evaluate's AUROC equals the one the test after fit logged
    assert metrics["scores"]["transform"]["auroc"] == pytest.approx(fit_metrics["test_auroc"], abs=5e-6)
    assert png_size(tmp_path / "e" / "scores_transform.png") == (1100, 440)

def test_semisupervised_fit_and_evaluate_anomaly_classes(tmp_path, fake_data_dir, capsys):
    config = fashion5_config(tmp_path, fake_data_dir, "fashion5_semisup.yaml")
    cfg = yaml.safe_load(config.read_text())
    cfg["data"]["init_args"]["labeled_batch_size"] = 8
    config.write_text(yaml.safe_dump(cfg))
    main(["fit", "--config", str(config)])
    out = capsys.readouterr().out
    assert "final-epoch" in out  # the final epoch's (EMA) weights are tested
    test_acc = printed_metrics(out)["test_acc"]
    ckpt = next((tmp_path / "logs" / "fashion5_semisup" / "version_0" / "checkpoints").glob("final-*.ckpt"))
    main(["evaluate", "--config", str(config), "--ckpt_path", str(ckpt), "--output_dir", str(tmp_path / "e"),
          "--scores", "[neg_elbo, mse]"])
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    # the accuracy evaluate reports on the normal test images is the test accuracy of the same weights
    assert metrics["normal_test_accuracy"] == pytest.approx(test_acc, abs=5e-6)  # printed with 5 decimals
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


def test_evaluate_rejects_unknown_local_residual(tmp_path, fake_data_dir, capsys):
    config = fashion5_config(tmp_path, fake_data_dir, "fashion5_cae.yaml")
    with pytest.raises(SystemExit):
        main(["evaluate", "--config", str(config), "--ckpt_path", "x.ckpt", "--local_residual", "signed"])
    err = capsys.readouterr().err
    assert "local_residual" in err and "signed" in err and "darker" in err
