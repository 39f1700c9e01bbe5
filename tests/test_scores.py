import lightning.pytorch as pl
import pytest
import torch

from aelab.data import FashionMNISTDataModule
from aelab.data.transforms import occlude
from aelab.evaluation import anomaly_metrics
from aelab.models import CAE, VAE
from aelab.scores import SCORES, applicable_scores, fit_model_stats, score


@pytest.fixture(scope="module")
def trained(fake_data_dir, tmp_path_factory):
    """A tiny CAE and VAE trained a few epochs on the synthetic data, plus a clean test batch."""
    pl.seed_everything(0)
    dm = FashionMNISTDataModule(str(fake_data_dir), download=False, verify=False, val_size=50, batch_size=32)
    models = {"cae": CAE(channels=8, latent_dim=4, hidden_dim=32, lr=5e-3),
              "vae": VAE(channels=8, latent_dim=4, hidden_dim=32, lr=5e-3)}
    for model in models.values():
        pl.Trainer(max_epochs=8, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, default_root_dir=tmp_path_factory.mktemp("s")).fit(model, dm)
        model.eval()
        fit_model_stats(model, dm.train_dataloader())
    dm.setup("test")
    return models, dm.test_set[list(range(40))]["image"]


def corrupt(x):
    """Obviously corrupted copies: inverted grey values plus pixel noise."""
    return (1 - x + 0.3 * torch.rand_like(x)).clamp(0, 1)


@pytest.mark.parametrize("name", list(SCORES))
def test_each_score_shape_and_corruption(trained, name):
    models, x = trained
    for kind, model in models.items():
        if name not in applicable_scores(model):
            with pytest.raises(ValueError, match="needs a (VAE|classifier)"):
                score(model, x, name)
            continue
        torch.manual_seed(0)
        clean = score(model, x, name)
        bad = score(model, corrupt(x), name)
        assert clean.shape == (40,) and torch.isfinite(clean).all()
        # higher = more anomalous: corrupted copies rank above the clean images
        auroc = anomaly_metrics(torch.cat([clean, bad]), torch.cat([torch.zeros(40), torch.ones(40)]))["auroc"]
        assert auroc > 0.8, f"{kind}/{name}: AUROC {auroc:.3f}"


def test_latent_scores_need_fitted_stats_and_survive_checkpoint(trained, tmp_path):
    models, x = trained
    fresh = CAE(channels=8, latent_dim=4, hidden_dim=32)
    with pytest.raises(RuntimeError, match="fit_model_stats"):
        score(fresh, x, "knn")
    cae = models["cae"]
    ckpt = {"state_dict": cae.state_dict()}
    cae.on_save_checkpoint(ckpt)
    torch.save(ckpt, tmp_path / "m.ckpt")
    from aelab.checkpoint import load_weights

    load_weights(fresh, tmp_path / "m.ckpt")
    assert torch.allclose(score(fresh, x, "mahalanobis"), score(cae, x, "mahalanobis"))


def test_iwae_bound_is_tighter_than_elbo(trained):
    _, x = trained
    vae = trained[0]["vae"]
    torch.manual_seed(1)
    elbo = score(vae, x, "neg_elbo_k", k=64).mean()
    iwae = score(vae, x, "iwae", k=64).mean()
    assert iwae <= elbo + 1e-3  # -log p(x) estimate <= -ELBO (Burda et al. 2016, Theorem 1)


def test_unknown_score():
    with pytest.raises(ValueError, match="unknown anomaly score 'psnr'"):
        score(CAE(channels=2, latent_dim=2, hidden_dim=8), torch.rand(2, 1, 28, 28), "psnr")


def test_occlusion_is_seeded_and_on_object():
    x = torch.zeros(50, 1, 28, 28, dtype=torch.uint8)
    x[:, :, 10:18, 10:18] = 200
    a = occlude(x, torch.Generator().manual_seed(3), fill=0.0)
    b = occlude(x, torch.Generator().manual_seed(3), fill=0.0)
    assert torch.equal(a, b)
    assert ((a != x).flatten(1).sum(1) > 0).all()  # every rectangle hides part of the object
    with pytest.raises(ValueError, match="size_range"):
        occlude(x, torch.Generator(), size_range=(0.5, 0.2))
