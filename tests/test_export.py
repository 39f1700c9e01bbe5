"""From a trained model to decisions: `aelab predict` on files, the Python Detector, and ONNX /
TorchScript export with score parity."""

import csv

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import aelab
from aelab.cli import main
from aelab.commands.exported import ExportedModel
from aelab.data import DataError

from helpers import fashion5_config


def read_scores(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {r.get("item", r.get("index")): float(r["score"]) for r in rows}, rows


@pytest.fixture(scope="module", params=[0.0, 1.0], ids=["cae", "cae_transform"])
def fitted(request, tmp_path_factory, fake_data_dir):
    """A tiny Fashion-5 CAE (and one with the transformation head) fitted by `aelab fit`, scorer knn, and
    the test images written as PNG files."""
    tmp = tmp_path_factory.mktemp("export")
    # BatchNorm and a large step give codes that spread in 20 steps (a collapsed code space, spread 0.1 % of
    # the codes' size, would make every latent distance a float32 rounding error in any runtime)
    config = fashion5_config(tmp, fake_data_dir, "fashion5_cae.yaml", transform_weight=request.param,
                             batch_norm=True, lr=1e-2)
    cfg = yaml.safe_load(config.read_text())
    cfg["trainer"].update(max_epochs=4, limit_train_batches=5)
    cfg["scorer"] = {"score": "knn", "threshold": "percentile", "threshold_value": 90.0}
    config.write_text(yaml.safe_dump(cfg))
    main(["fit", "--config", str(config), "--test_after_fit", "false"])
    best = next((tmp / "logs" / "fashion5_cae" / "version_0" / "checkpoints").glob("best-*.ckpt"))
    from aelab.data import Fashion5DataModule

    dm = Fashion5DataModule(**{k: v for k, v in cfg["data"]["init_args"].items()})
    dm.setup("test")
    folder = tmp / "pngs"
    folder.mkdir()
    for i, image in enumerate(dm.test_set.inputs[:40]):
        Image.fromarray(image[0].numpy()).save(folder / f"img{i:03d}.png")
    return config, best, folder, dm.test_set.inputs[:40], request.param


def test_predict_on_a_folder_needs_no_other_step_and_matches_evaluate(fitted, tmp_path):
    config, best, folder, _, _ = fitted
    main(["predict", "--ckpt_path", str(best), "--data", str(folder), "--output", str(tmp_path / "p.csv"),
          "--save_maps", "true"])
    predicted, rows = read_scores(tmp_path / "p.csv")
    assert len(rows) == 40 and {"item", "score", "threshold", "is_anomaly"} <= set(rows[0])
    threshold = float(rows[0]["threshold"])
    assert all(int(r["is_anomaly"]) == (float(r["score"]) >= threshold) for r in rows)
    flagged = [i for i, r in enumerate(rows) if int(r["is_anomaly"])]
    assert flagged  # (the threshold is the 90th percentile of normal validation scores)
    maps = sorted((tmp_path / "maps").glob("*.png"))  # one difference map per flagged image, named after it
    assert [int(m.name[:6]) for m in maps] == flagged and all(Image.open(m).size == (28, 28) for m in maps)
    main(["evaluate", "--config", str(config), "--ckpt_path", str(best), "--output_dir", str(tmp_path / "e"),
          "--scores", "[knn]"])
    evaluated, _ = read_scores(tmp_path / "e" / "predictions.csv")
    for i in range(40):  # the first 40 test items are the 40 PNG files
        a, b = predicted[str(folder / f"img{i:03d}.png")], evaluated[str(i)]
        assert abs(a - b) <= 1e-5 * max(1.0, abs(b)), (i, a, b)


def test_detector_matches_predict_and_checks_shapes(fitted, tmp_path):
    _, best, folder, images, _ = fitted
    detector = aelab.Detector.load(best)
    main(["predict", "--ckpt_path", str(best), "--data", str(folder), "--output", str(tmp_path / "p.csv")])
    predicted, _ = read_scores(tmp_path / "p.csv")
    from_files = detector.score_samples(folder)
    from_arrays = detector.score_samples(images[:, 0].numpy())  # uint8 (N, H, W)
    expected = np.array([predicted[str(folder / f"img{i:03d}.png")] for i in range(40)])
    np.testing.assert_allclose(from_files, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(from_arrays, expected, rtol=1e-6, atol=1e-6)
    flags = detector.predict(images.float() / 255)  # float (N, C, H, W) in [0, 1]
    assert flags.tolist() == (expected >= detector.threshold_).astype(int).tolist()
    np.testing.assert_allclose(detector.decision_function(images.numpy()), expected - detector.threshold_, atol=1e-6)
    with pytest.raises(DataError, match=r"expects uint8 \(N, 28, 28\)"):
        detector.score_samples(np.zeros((3, 32, 32), dtype=np.uint8))


@pytest.mark.parametrize("fitted, score, fmt", [
    (0.0, "knn", "onnx"), (0.0, "mse", "onnx"), (0.0, "local_error", "onnx"), (0.0, "mahalanobis", "onnx"),
    (1.0, "transform", "onnx"), (0.0, "knn", "torchscript"), (0.0, "local_error", "torchscript"),
], indirect=["fitted"], ids=["knn-onnx", "mse-onnx", "local_error-onnx", "mahalanobis-onnx", "transform-onnx",
                             "knn-torchscript", "local_error-torchscript"])
def test_export_parity(fitted, tmp_path, score, fmt, capsys):
    config, best, folder, images, _ = fitted
    out = tmp_path / f"d.{'onnx' if fmt == 'onnx' else 'pt'}"
    main(["export", "--config", str(config), "--ckpt_path", str(best), "--format", fmt, "--output", str(out),
          "--score", score])
    assert "parity on 100 test items" in capsys.readouterr().out  # checked after writing, else an error
    exported = ExportedModel(out)
    assert exported.meta["score"] == score and exported.meta["input"]["shape"] == [1, 28, 28]
    eager = aelab.Detector.load(best)
    if score != "knn":  # the checkpoint's scorer is knn: calibrate the eager one for the same score
        from aelab.scoring import Scorer, attach_scorer, calibrate

        eager.model.scorer = None
        attach_scorer(eager.model, Scorer(score, threshold="percentile", threshold_value=90.0))
        eager.datamodule.setup("fit")
        calibrate(eager.model.scorer, eager.model, eager.datamodule.train_set, eager.datamodule.normal_val_set)
    a, b = eager.score_samples(images.numpy()), aelab.Detector.load(out).score_samples(images.numpy())
    assert np.all(np.abs(a - b) <= 1e-5 * np.maximum(1, np.abs(a)))
    assert np.array_equal(eager.predict(images.numpy()), aelab.Detector.load(out).predict(images.numpy()))
    # `aelab predict --model FILE` runs the exported file on a folder
    main(["predict", "--model", str(out), "--data", str(folder), "--output", str(tmp_path / "x.csv")])
    got, _ = read_scores(tmp_path / "x.csv")
    assert len(got) == 40


def test_sampling_scores_are_refused(fake_data_dir, tmp_path):
    config = fashion5_config(tmp_path, fake_data_dir, "fashion5_vae.yaml")
    main(["fit", "--config", str(config), "--test_after_fit", "false", "--trainer.max_epochs", "1"])
    best = next((tmp_path / "logs" / "fashion5_vae" / "version_0" / "checkpoints").glob("best-*.ckpt"))
    with pytest.raises(ValueError, match="'neg_elbo' cannot be exported .* exportable scores: .*'knn'"):
        main(["export", "--config", str(config), "--ckpt_path", str(best), "--output", str(tmp_path / "x.onnx")])
