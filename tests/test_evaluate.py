"""`aelab evaluate` end to end on a tiny config (seconds)."""

import json

import yaml

from aelab.cli import main

from test_cli import tiny_config

FASHION5_SMALL = dict(num_unlabeled=150, num_labeled=40, num_test_normal=60, num_anomalies=20)


def fashion5_config(tmp_path, data_dir, recipe, **model):
    path = tiny_config(tmp_path, data_dir, recipe, **model)
    config = yaml.safe_load(path.read_text())
    config["data"]["init_args"].pop("val_size")
    config["data"]["init_args"].update(anomaly_kind="both", **FASHION5_SMALL)
    path.write_text(yaml.safe_dump(config))
    return path


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
    assert set(metrics["scores"]) == {"mse", "local_error", "neg_elbo", "neg_elbo_k", "iwae", "recon_prob",
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


def test_evaluate_cae_subset_of_scores(tmp_path, fake_data_dir):
    config = fashion5_config(tmp_path, fake_data_dir, "fashion5_cae.yaml")
    main(["fit", "--config", str(config), "--test_after_fit", "false"])
    ckpt = tmp_path / "logs" / "fashion5_cae" / "version_0" / "checkpoints" / "last.ckpt"
    main(["evaluate", "--config", str(config), "--ckpt_path", str(ckpt), "--output_dir", str(tmp_path / "e"),
          "--scores", "[mse, knn]"])
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert set(metrics["scores"]) == {"mse", "knn"}
