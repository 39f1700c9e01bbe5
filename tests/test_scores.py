import math

import lightning.pytorch as pl
import pytest
import torch

from aelab.checkpoint import load_weights
from aelab.data import FashionMNISTDataModule
from aelab.data.transforms import occlude
from aelab.evaluation import anomaly_metrics
from aelab.models import CAE, VAE
from aelab.models.transform_head import apply_transform, geometric_transforms, shift
from aelab.scoring import SCORES, Scorer, applicable_scores, attach_scorer, calibrate, check_score
from aelab.scoring.calibrate import fit_stats
from aelab.scoring.functions import local_error_score, pairwise_distances, residual_map

from helpers import tiny_trainer


@pytest.fixture(scope="module")
def trained(fake_data_dir, tmp_path_factory):
    """A tiny CAE (with the transformation-prediction head) and VAE trained a few epochs on the
    synthetic data, each with a scorer whose latent statistics are fitted, plus a clean test batch."""
    pl.seed_everything(0)
    dm = FashionMNISTDataModule(str(fake_data_dir), download=False, verify=False, val_size=50, batch_size=32)
    models = {"cae": CAE(channels=8, latent_dim=4, hidden_dim=32, lr=5e-3, transform_weight=1.0),
              "vae": VAE(channels=8, latent_dim=4, hidden_dim=32, lr=5e-3)}
    for model in models.values():
        tiny_trainer(tmp_path_factory.mktemp("s"), max_epochs=5).fit(model, dm)
        model.eval()
        fit_stats(attach_scorer(model), model, dm.train_set)
    dm.setup("test")
    return models, dm.test_set[list(range(40))]["input"], dm


def score(model, x, name, **settings):
    """Score ``name`` of ``x`` with the model's scorer (its fitted statistics)."""
    check_score(model, name, settings)
    with torch.no_grad():
        return model.scorer.score_as(model, x, name, settings)


def corrupt(x):
    """Obviously corrupted copies: inverted grey values plus pixel noise."""
    return (1 - x + 0.3 * torch.rand_like(x)).clamp(0, 1)


@pytest.mark.parametrize("name", list(SCORES))
def test_each_score_shape_and_corruption(trained, name):
    models, x, _ = trained
    for kind, model in models.items():
        if name not in applicable_scores(model):
            with pytest.raises(ValueError, match="needs a model with"):
                score(model, x, name)
            continue
        torch.manual_seed(0)
        clean = score(model, x, name)
        bad = score(model, corrupt(x), name)
        assert clean.shape == (40,) and torch.isfinite(clean).all()
        # higher = more anomalous: corrupted copies rank above the clean images
        auroc = anomaly_metrics(torch.cat([clean, bad]), torch.cat([torch.zeros(40), torch.ones(40)]))["auroc"]
        assert auroc > 0.8, f"{kind}/{name}: AUROC {auroc:.3f}"


def test_latent_scores_need_fitted_stats(trained):
    _, x, _ = trained
    fresh = CAE(channels=8, latent_dim=4, hidden_dim=32, transform_weight=1.0)
    attach_scorer(fresh, Scorer("knn"))
    with pytest.raises(RuntimeError, match="calibrate"):
        fresh.scorer(fresh, x)


def test_scorer_survives_a_weights_only_checkpoint(trained, tmp_path):
    """Score settings, latent statistics and threshold are module state: a checkpoint written with the
    model's state_dict loads with weights_only=True and scores identically, into a model with a scorer
    attached before loading or after."""
    models, x, dm = trained
    cae = models["cae"]
    cae.scorer = None
    scorer = attach_scorer(cae, Scorer("knn", {"k": 3}, threshold="fpr", threshold_value=0.05))
    threshold = calibrate(scorer, cae, dm.train_set, dm.normal_val_set)
    torch.save({"state_dict": cae.state_dict(), "hyper_parameters": dict(cae.hparams)}, tmp_path / "m.ckpt")
    expected = cae.scorer(cae, x)
    for attach_first in (True, False):
        fresh = CAE(channels=8, latent_dim=4, hidden_dim=32, transform_weight=1.0)
        if attach_first:
            attach_scorer(fresh)  # unconfigured: takes the checkpoint's score, settings and threshold
        load_weights(fresh, tmp_path / "m.ckpt")
        if not attach_first:
            attach_scorer(fresh)
        assert fresh.scorer.score == "knn" and fresh.scorer.settings == {"k": 3} and fresh.scorer.fitted
        assert float(fresh.scorer.threshold_) == threshold
        assert torch.equal(fresh.scorer(fresh, x), expected)
        assert torch.equal(fresh.scorer.flag(expected), scorer.flag(expected))
    # an explicitly configured other score wins, and the checkpoint's fit is dropped (never used silently)
    other = CAE(channels=8, latent_dim=4, hidden_dim=32, transform_weight=1.0)
    attach_scorer(other, Scorer("mahalanobis"))
    load_weights(other, tmp_path / "m.ckpt")
    assert other.scorer.score == "mahalanobis" and not other.scorer.fitted and "recalibrating" in other.scorer.notes[0]
    cae.scorer = None
    attach_scorer(cae)


def test_pairwise_distances_match_cdist():
    a, b = torch.randn(7, 5), torch.randn(40, 5)
    torch.testing.assert_close(pairwise_distances(a, b), torch.cdist(a.double(), b.double()).float())
    far = torch.randn(3, 4) + 1000.0  # codes far from the origin: float32 expansion would lose the distance
    near = far + 1e-3 * torch.randn(3, 4)
    torch.testing.assert_close(pairwise_distances(far, near).diagonal(), (far - near).norm(dim=1), rtol=1e-3, atol=0)


class FixedReconstruction(torch.nn.Module):
    """Stands in for an autoencoder whose reconstruction is always ``target``."""

    def __init__(self, target):
        super().__init__()
        self.target = target

    def reconstruct(self, x):
        return self.target.expand_as(x)


def test_residual_maps_by_hand():
    model = FixedReconstruction(torch.full((1, 1, 2, 2), 0.5))
    x = torch.tensor([[[[0.0, 0.5], [1.0, 0.25]]]])
    expect = {"squared": [[0.25, 0.0], [0.25, 0.0625]], "absolute": [[0.5, 0.0], [0.5, 0.25]],
              "darker": [[0.5, 0.0], [0.0, 0.25]], "brighter": [[0.0, 0.0], [0.5, 0.0]]}
    for residual, values in expect.items():
        assert torch.allclose(residual_map(model, x, residual), torch.tensor([[values]])), residual
    assert local_error_score(model, x, sigma=0, residual="brighter").tolist() == [0.5]
    with pytest.raises(ValueError, match="residual must be one of"):
        residual_map(model, x, "signed")


def test_darker_residual_ignores_bright_noise_and_finds_black_occlusion():
    model = FixedReconstruction(torch.full((1, 1, 28, 28), 0.6))
    clean = torch.full((1, 1, 28, 28), 0.6)
    bright = clean.clone()
    bright[..., 10:18, 10:18] = 1.0  # extra intensity: not what a "darker" score looks for
    dark = clean.clone()
    dark[..., 10:18, 10:18] = 0.0  # a black rectangle
    s = local_error_score(model, torch.cat([clean, bright, dark]), sigma=2.0, residual="darker")
    assert s[0] == s[1] == 0 and s[2] > 0.5
    squared = local_error_score(model, torch.cat([clean, bright, dark]), sigma=2.0)
    assert squared[1] > 0 and squared[2] > squared[1]


def test_iwae_bound_is_tighter_than_elbo(trained):
    models, x, _ = trained
    vae = models["vae"]
    torch.manual_seed(1)
    elbo = score(vae, x, "neg_elbo_k", k=64).mean()
    iwae = score(vae, x, "iwae", k=64).mean()
    assert iwae <= elbo + 1e-3  # -log p(x) estimate <= -ELBO (Burda et al. 2016, Theorem 1)


def test_unknown_score_and_setting():
    model = CAE(channels=2, latent_dim=2, hidden_dim=8)
    with pytest.raises(ValueError, match="unknown anomaly score 'psnr'"):
        check_score(model, "psnr")
    with pytest.raises(ValueError, match="has no setting"):
        check_score(model, "knn", {"neighbours": 3})
    with pytest.raises(ValueError, match="unknown anomaly score"):
        Scorer("psnr")


def test_occlusion_is_seeded_and_on_object():
    x = torch.zeros(50, 1, 28, 28, dtype=torch.uint8)
    x[:, :, 10:18, 10:18] = 200
    a = occlude(x, torch.Generator().manual_seed(3), fill=0.0)
    b = occlude(x, torch.Generator().manual_seed(3), fill=0.0)
    assert torch.equal(a, b)
    assert ((a != x).flatten(1).sum(1) > 0).all()  # every rectangle hides part of the object
    with pytest.raises(ValueError, match="size_range"):
        occlude(x, torch.Generator(), size_range=(0.5, 0.2))


def test_geometric_transforms_by_hand():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert shift(x, 1, 0)[0, 0].tolist() == [[0, 0, 0, 0], [0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert shift(x, 0, -2)[0, 0].tolist() == [[2, 3, 0, 0], [6, 7, 0, 0], [10, 11, 0, 0], [14, 15, 0, 0]]
    # shift first, then a quarter turn counter-clockwise
    assert torch.equal(apply_transform(x, (1, 1, 0)), torch.rot90(shift(x, 1, 0), 1, dims=(2, 3)))
    square, wide = geometric_transforms((1, 28, 28)), geometric_transforms((1, 28, 40))
    assert len(square) == 20 and len(set(square)) == 20 and (0, 6, 0) in square and (3, 0, -6) in square
    assert len(wide) == 10 and {k for k, _, _ in wide} == {0, 2}  # no 90-degree turns of a non-square image


def test_transform_head_loss_and_score_checkpoint(trained, tmp_path):
    """The CAE's head predicts the transformation far above chance (1/20) after training, and the
    ``transform`` score survives a checkpoint round trip."""
    models, x, _ = trained
    cae = models["cae"]
    torch.manual_seed(0)
    ce, acc = cae.transform_head.loss(cae.encoder, x)
    assert acc > 0.25 and ce < math.log(20) - 0.5  # chance: accuracy 1/20, cross-entropy log 20
    path = tmp_path / "t.ckpt"
    torch.save({"state_dict": cae.state_dict(), "hyper_parameters": dict(cae.hparams)}, path)
    loaded = load_weights(CAE(**cae.hparams), str(path)).eval()
    attach_scorer(loaded)
    assert torch.allclose(score(loaded, x, "transform"), score(cae, x, "transform"))
    with pytest.raises(ValueError, match="transform_weight"):
        CAE(transform_weight=-1.0)


def test_scorer_takes_the_checkpoints_settings_for_its_own_score():
    """A config that names the same score without settings takes the settings the checkpoint's scorer was
    fitted with (e.g. those `aelab evaluate` chose), keeping its threshold; other settings recalibrate."""
    saved = Scorer("local_error", {"sigma": 3.0, "residual": "darker"})
    saved.set_threshold(0.25)
    state = saved.state_dict()
    same = Scorer("local_error")
    same.load_state_dict(state)
    assert same.settings == {"sigma": 3.0, "residual": "darker"} and float(same.threshold_) == 0.25
    other = Scorer("local_error", {"sigma": 1.0})
    other.load_state_dict(state)
    assert other.settings == {"sigma": 1.0} and not bool(torch.isfinite(other.threshold_))
    assert "recalibrating" in other.notes[0]
