"""Latent-space report: figures, embeddings, projector, generation, probe and `aelab latent` end to end."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from aelab.cli import main
from aelab.data import CLASS_NAMES, FashionMNISTDataModule
from aelab.latent import plots
from aelab.latent.embed import encode_split, seeded_subset
from aelab.latent.generate import (
    SAMPLER_GAUSSIAN,
    SAMPLER_PRIOR,
    decode,
    different_class_pairs,
    interpolate,
    latent_plane_grid,
    sample_images,
)
from aelab.latent.probe import linear_probe
from aelab.latent.write import add_projector, sprite_images
from aelab.models import CAE, VAE
from aelab.runs import output_dir, run_dir
from aelab.scoring.training_stats import gaussian_fit

from helpers import ROOT, tiny_config


def n_points(fig: Figure) -> int:
    return sum(len(c.get_offsets()) for c in fig.axes[0].collections)


def legend_texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


# -- figures -------------------------------------------------------------------------------------
def test_scatter_by_class_has_every_point_and_one_legend_entry_per_class_present():
    rng = np.random.default_rng(0)
    labels = rng.choice([0, 3, 7], size=250)
    fig = plots.scatter_by_class(rng.normal(size=(250, 2)), labels, CLASS_NAMES, title="t")
    assert isinstance(fig, Figure)
    assert n_points(fig) == 250
    texts = legend_texts(fig)
    assert len(texts) == 3
    assert [t.split(" (")[0] for t in texts] == [CLASS_NAMES[0], CLASS_NAMES[3], CLASS_NAMES[7]]
    assert texts[1] == f"{CLASS_NAMES[3]} ({(labels == 3).sum()})"


def test_scatter_unlabelled_points_and_default_names():
    labels = np.array([-1, -1, 0, 1, 1])
    fig = plots.scatter_by_class(np.zeros((5, 2)), labels)
    assert n_points(fig) == 5
    assert legend_texts(fig) == [f"{plots.UNLABELLED} (2)", "0 (1)", "1 (2)"]
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plots.scatter_by_class(np.zeros((5, 3)), labels)


def test_explained_variance_and_image_grids():
    fig = plots.explained_variance(np.array([0.5, 0.3, 0.2]))
    assert len(fig.axes[0].patches) == 3
    images = np.random.default_rng(0).random((10, 1, 8, 6)).astype(np.float32)
    grid = plots.tile_images(images, ncols=4, pad=1)
    assert grid.shape == (3 * 9 + 1, 4 * 7 + 1)
    assert grid.shape[:2] == plots.tile_images(np.repeat(images, 3, axis=1), 4).shape[:2]
    assert plots.tile_images(np.repeat(images, 3, axis=1), 4).shape[2] == 3
    assert isinstance(plots.image_grid(images, 4, title="x"), Figure)
    z1, z2, z = latent_plane_grid(np.random.default_rng(0).normal(size=(100, 2)), n=5)
    assert z.shape == (25, 2) and np.allclose(z[7], (z1[2], z2[1]))
    fig = plots.latent_plane(np.zeros((25, 1, 8, 8)), z1, z2)
    assert fig.axes[0].images[0].get_array().shape == (40, 40)


# -- encoding, generation, probe -------------------------------------------------------------------
@pytest.fixture(scope="module")
def datamodule(fake_data_dir):
    dm = FashionMNISTDataModule(data_dir=str(fake_data_dir), download=False, verify=False, val_size=60)
    dm.setup("fit")
    return dm


def test_encode_split_shapes_and_unknown_split(datamodule):
    model = CAE(channels=4, latent_dim=3, hidden_dim=16)
    emb = encode_split(model, datamodule, "test")
    assert emb.codes.shape == (200, 3) and emb.codes.dtype == np.float32
    assert emb.labels.shape == (200,) and emb.labels.dtype == np.int64
    assert emb.images.shape == (200, 1, 28, 28) and emb.images.dtype == np.uint8
    np.testing.assert_array_equal(emb.labels, datamodule.test_set.labels.numpy())
    sub = encode_split(model, datamodule, "train", max_items=50, seed=1, keep_images=False)
    assert sub.codes.shape == (50, 3) and sub.images is None
    np.testing.assert_array_equal(sub.index, seeded_subset(340, 50, 1))
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        encode_split(model, datamodule, "valid")


def test_sampling_interpolation_and_decode():
    torch.manual_seed(0)
    cae, vae = CAE(channels=4, latent_dim=3, hidden_dim=16), VAE(channels=4, latent_dim=3, hidden_dim=16)
    codes = np.random.default_rng(0).normal(size=(500, 3)) * [1, 2, 3] + 5
    mean, cov = gaussian_fit(codes)
    assert mean.shape == (3,) and cov.shape == (3, 3) and np.allclose(np.diag(cov.numpy()), [1, 4, 9], rtol=0.2)
    images, sampler = sample_images(cae, 6, train_codes=codes, seed=0)
    assert images.shape == (6, 1, 28, 28) and sampler == SAMPLER_GAUSSIAN
    assert 0 <= images.min() and images.max() <= 1
    with pytest.raises(ValueError, match="train_codes"):
        sample_images(cae, 6)
    a, sampler = sample_images(vae, 5, seed=3)
    b, _ = sample_images(vae, 5, seed=3)
    assert a.shape == (5, 1, 28, 28) and sampler == SAMPLER_PRIOR and torch.equal(a, b)
    x = torch.rand(4, 1, 28, 28)
    for model in (cae, vae):
        model.eval()
        inter = interpolate(model, x[:2], x[2:], steps=5)
        assert inter.shape == (2, 5, 1, 28, 28)
        torch.testing.assert_close(inter[:, 0], model.reconstruct(x[:2]).detach(), atol=1e-5, rtol=0)
        torch.testing.assert_close(inter[:, -1], model.reconstruct(x[2:]).detach(), atol=1e-5, rtol=0)
    assert decode(cae, torch.zeros(2, 3)).shape == (2, 1, 28, 28)
    pairs = different_class_pairs(np.array([0, 0, 1, 1, 2]), 10, seed=0)
    labels = np.array([0, 0, 1, 1, 2])
    assert pairs.shape == (10, 2) and (labels[pairs[:, 0]] != labels[pairs[:, 1]]).all()


def test_linear_probe_on_separable_codes():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=600)
    x = rng.normal(size=(600, 4)) + 4 * np.eye(4)[y]
    out = linear_probe(x[:400], y[:400], x[400:], y[400:])
    assert out["accuracy"] > 0.95 and out["n_train"] == 400 and out["n_test"] == 200
    with pytest.raises(ValueError, match="two classes"):
        linear_probe(x[:10], np.zeros(10, int), x, y)


# -- TensorBoard projector ---------------------------------------------------------------------------
def test_projector_files_are_written(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    codes = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    images = torch.rand(30, 1, 28, 28)
    meta = {"class": [CLASS_NAMES[i % 10] for i in range(30)], "kmeans": [i % 3 for i in range(30)]}
    with SummaryWriter(str(tmp_path)) as writer:
        add_projector(writer, codes, meta, images, tag="test_codes")
    assert "test_codes" in (tmp_path / "projector_config.pbtxt").read_text()
    out = next(tmp_path.rglob("metadata.tsv")).parent
    lines = (out / "metadata.tsv").read_text().splitlines()
    assert lines[0] == "class\tkmeans" and len(lines) == 31 and lines[2] == f"{CLASS_NAMES[1]}\t1"
    assert (out / "sprite.png").stat().st_size > 0 and (out / "tensors.tsv").exists()
    # big images are shrunk to keep the sprite within TensorBoard's 8192-pixel limit
    assert sprite_images(torch.rand(400, 1, 500, 500)).shape[-1] * 20 <= 8192


def test_run_folders(tmp_path):
    assert run_dir("runs/cae/version_3/checkpoints/best.ckpt") == Path("runs/cae/version_3")
    assert run_dir("somewhere/model.ckpt") == Path("somewhere")
    ckpt = tmp_path / "cae" / "version_3" / "checkpoints" / "best.ckpt"
    assert output_dir("latent", ckpt) == tmp_path / "cae" / "version_3" / "latent" and (ckpt.parents[1] / "latent").is_dir()
    assert output_dir("latent", ckpt, tmp_path / "elsewhere") == tmp_path / "elsewhere"


# -- `aelab latent` end to end --------------------------------------------------------------------------
@pytest.mark.parametrize("recipe, latent_dim", [("cae.yaml", 2), ("vae.yaml", 4)])
def test_cli_latent_end_to_end(tmp_path, fake_data_dir, capsys, recipe, latent_dim):
    config = tiny_config(tmp_path, fake_data_dir, recipe=recipe)
    if latent_dim != 4:  # the CAE run uses 2-D codes, so the decoded latent plane is drawn too
        text = config.read_text().replace("latent_dim: 4", f"latent_dim: {latent_dim}")
        config.write_text(text)
    main(["fit", "--config", str(config)])
    name = recipe.split(".")[0]
    ckpt = tmp_path / "logs" / name / "version_0" / "checkpoints" / "last.ckpt"
    out = tmp_path / "latent"
    capsys.readouterr()
    main(["latent", "--config", str(config), "--ckpt_path", str(ckpt), "--output_dir", str(out),
          "--max_points", "120", "--perplexity", "5", "--tsne_iterations", "250", "--n_samples", "16"])
    printed = capsys.readouterr().out
    assert "linear probe accuracy" in printed and "equilibrium k-means" in printed

    emb = np.load(out / "embeddings.npz")
    assert emb["codes"].shape == (200, latent_dim) and emb["codes"].dtype == np.float32
    assert emb["labels"].shape == (200,) and emb["labels"].dtype == np.int64
    assert emb["pca"].shape == (200, 2)
    assert emb["tsne"].shape == (120, 2) and emb["tsne_index"].shape == (120,)
    assert emb["kmeans"].shape == emb["ekm"].shape == (120,)
    assert list(emb["class_names"]) == list(CLASS_NAMES)

    report = json.loads((out / "latent.json").read_text())
    for key in ("probe_accuracy", "kmeans_nmi", "kmeans_ari", "ekm_nmi", "ekm_ari", "kmeans_sizes", "ekm_sizes",
                "pca_explained_variance_ratio", "timings_s", "n_points", "latent_dim"):
        assert key in report, key
    assert report["n_points"] == 200 and report["latent_dim"] == latent_dim
    assert report["probe_accuracy"] > 0.3 and sum(report["kmeans_sizes"]) == 120  # 10 classes: chance is 0.1
    assert report["sampler"] == ("prior: model.sample(n), z ~ N(0, I)" if name == "vae" else
                                 "Gaussian fitted to the training codes (mean, full covariance), decoded")
    assert {"encode", "pca", "tsne", "kmeans", "ekm", "probe", "generate", "total"} <= set(report["timings_s"])
    pngs = {"pca", "pca_explained_variance", "tsne", "tsne_kmeans", "tsne_ekm", "samples", "interpolations",
            "reconstructions"}
    if latent_dim == 2:
        pngs.add("latent_plane")
    assert {p.stem for p in out.glob("*.png")} == pngs

    # projector and figures in the TensorBoard folder of the checkpoint's run (no new version)
    tb = Path(report["tensorboard_dir"])
    assert tb == tmp_path / "logs" / name / "version_0"
    assert sorted(p.name for p in (tmp_path / "logs" / name).iterdir()) == ["version_0"]
    assert (tb / "projector_config.pbtxt").exists()
    assert {"metadata.tsv", "sprite.png"} <= {p.name for p in tb.rglob("*")}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb), size_guidance={"images": 0})
    acc.Reload()
    assert {"latent/tsne", "latent/pca", "latent/samples_grid"} <= set(acc.Tags()["images"])


def test_cli_latent_reports_bad_split(tmp_path, fake_data_dir, capsys):
    config = tiny_config(tmp_path, fake_data_dir)
    with pytest.raises(SystemExit):
        main(["latent", "--config", str(config), "--ckpt_path", str(tmp_path / "x.ckpt"), "--split", "validation"])
    err = capsys.readouterr().err
    assert "split" in err and "validation" in err and "'val'" in err  # the choices are named


def test_latent_on_an_unlabeled_flat_folder(tmp_path, capsys):
    """A flat folder (every label -1, e.g. CelebA faces): no probe, clustering agreement reported as n/a
    (not a meaningless 1.0), the image figures still written."""
    from PIL import Image

    folder = tmp_path / "faces"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 255, (20, 18, 3), dtype=np.uint8)).save(folder / f"{i:03d}.jpg")
    args = ["--config", str(ROOT / "configs" / "celeba_vae.yaml"), "--data.init_args.root", str(folder),
            "--data.init_args.image_size", "16", "--data.init_args.cache_dir", str(tmp_path / "cache"),
            "--data.init_args.batch_size", "8"]
    model = ["--model.init_args.num_stages", "2", "--model.init_args.channels", "4", "--model.init_args.latent_dim",
             "4", "--model.init_args.hidden_dim", "16", "--model.init_args.log_images", "0"]
    main(["fit", *args, *model, "--trainer.max_epochs", "1", "--trainer.logger.init_args.save_dir",
          str(tmp_path / "logs"), "--test_after_fit", "false"])
    ckpt = next((tmp_path / "logs" / "celeba_vae" / "version_0" / "checkpoints").glob("best-*.ckpt"))
    out = tmp_path / "latent"
    main(["latent", *args, "--ckpt_path", str(ckpt), "--output_dir", str(out), "--perplexity", "2",
          "--tsne_iterations", "250", "--n_samples", "4"])
    report = json.loads((out / "latent.json").read_text())
    assert report["probe_accuracy"] is None and report["kmeans_nmi"] is None and report["ekm_ari"] is None
    assert sum(report["kmeans_sizes"]) == report["n_subset"]
    assert "n/a (no labels)" in capsys.readouterr().out
    assert {"samples", "interpolations", "reconstructions"} <= {p.stem for p in out.glob("*.png")}
