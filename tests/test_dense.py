"""Dense nets and the CAE / VAE on table rows; the heteroscedastic decoder and its scores."""

import math

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from aelab.data.datasets import InMemoryDataset, batch_loader
from aelab.evaluation.feature_subset import backward_feature_subset
from aelab.models import CAE, VAE
from aelab.nets import MLPDecoder, MLPEncoder
from aelab.scoring import Scorer, applicable_scores, attach_scorer
from aelab.scoring.calibrate import fit_stats
from aelab.scoring.functions import mse_score, recon_mahalanobis_score, recon_nll_score, recon_prob_score

from helpers import tiny_trainer


def test_dense_nets_and_models_on_rows():
    enc, dec = MLPEncoder(30, 16, [20, 10]), MLPDecoder(60, 8, [20, 10])
    x = torch.randn(5, 30)
    assert enc(x).shape == (5, 16) and dec(torch.randn(5, 8)).shape == (5, 60)
    assert [m.out_features for m in dec.net if isinstance(m, torch.nn.Linear)] == [10, 20, 60]
    with pytest.raises(ValueError, match=r"\(N, 30\)"):
        enc(torch.randn(5, 29))
    cae = CAE(input_shape=(30,), latent_dim=8, hidden_dims=[20, 10])
    vae = VAE(input_shape=(30,), latent_dim=8, hidden_dims=[20, 10], likelihood="heteroscedastic")
    assert cae.reconstruct(x).shape == vae.reconstruct(x).shape == (5, 30)
    assert cae.encode(x).shape == vae.encode(x).shape == (5, 8)
    # image-only scores do not apply to rows
    assert "local_error" not in applicable_scores(cae) and "complexity" not in applicable_scores(vae)
    assert {"mse", "neg_elbo", "iwae", "recon_prob", "mahalanobis", "knn", "recon_mahalanobis"} <= set(
        applicable_scores(vae))
    assert "recon_mahalanobis" in applicable_scores(cae)
    assert "recon_mahalanobis" not in applicable_scores(CAE(input_shape=(1, 28, 28)))  # a D x D covariance of pixels
    with pytest.raises(ValueError, match="bernoulli"):
        VAE(input_shape=(30,), likelihood="bernoulli")
    with pytest.raises(ValueError, match="needs images"):
        CAE(input_shape=(30,), transform_weight=1.0)


def test_heteroscedastic_log_likelihood_matches_torch_normal():
    torch.manual_seed(0)
    vae = VAE(input_shape=(6,), latent_dim=2, hidden_dims=[8], likelihood="heteroscedastic")
    x = torch.randn(4, 6)
    out = torch.randn(3, 4, 12)  # raw decoder outputs of 3 samples of z: means, then log-variances
    mean, log_var = out[..., :6], out[..., 6:]
    expected = torch.distributions.Normal(mean, (0.5 * log_var).exp()).log_prob(x).sum(-1)
    torch.testing.assert_close(vae.log_likelihood(x, out), expected)
    got_mean, got_log_var = vae.decoder_distribution(out)
    assert torch.equal(got_mean, mean) and torch.equal(got_log_var, log_var)


def test_recon_prob_is_an_and_cho_average_of_probabilities():
    """``recon_prob`` is -log of the average probability over L samples (not the average log)."""
    torch.manual_seed(0)
    vae = VAE(input_shape=(5,), latent_dim=2, hidden_dims=[8], likelihood="heteroscedastic").eval()
    x = torch.randn(3, 5)
    torch.manual_seed(1)
    got = recon_prob_score(vae, x, k=7)
    torch.manual_seed(1)
    mu, log_var = vae.posterior(x)
    z = vae.reparameterize(mu, log_var, 7)
    probs = vae.log_likelihood(x, vae.decode_logits(z)).double().exp()  # (7, 3)
    torch.testing.assert_close(got.double(), -probs.mean(0).log(), rtol=1e-5, atol=1e-5)


def test_recon_nll_is_the_normal_log_density_at_the_posterior_mean():
    """``recon_nll`` = -sum_j log N(x_j; mean_j(mu), var_j(mu)) over all features or the chosen ones."""
    torch.manual_seed(0)
    vae = VAE(input_shape=(5,), latent_dim=2, hidden_dims=[8], likelihood="heteroscedastic").eval()
    x = torch.randn(3, 5)
    with torch.no_grad():
        mean, log_var = vae.decoder_distribution(vae.decode_logits(vae.posterior(x)[0]))
        per_feature = torch.distributions.Normal(mean, (0.5 * log_var).exp()).log_prob(x)  # (3, 5)
        torch.testing.assert_close(recon_nll_score(vae, x), -per_feature.sum(1))
        torch.testing.assert_close(recon_nll_score(vae, x, features=[4, 1]), -per_feature[:, [1, 4]].sum(1))
        assert torch.equal(recon_nll_score(vae, x), recon_nll_score(vae, x))  # no sampling
    for bad in ([], [5], [-1]):
        with pytest.raises(ValueError, match="features"):
            recon_nll_score(vae, x, features=bad)


def test_recon_mahalanobis_is_the_distance_of_standardised_residuals_to_the_training_residuals():
    """Heteroscedastic VAE: residuals ``(x - mean) / sigma`` at the posterior mean; CAE: ``x - x_hat``; both
    against scipy's Mahalanobis distance with the training residuals' mean and (shrunk) covariance."""
    from scipy.spatial.distance import mahalanobis

    torch.manual_seed(0)
    train = InMemoryDataset(torch.randn(300, 5) @ torch.randn(5, 5), torch.zeros(300, dtype=torch.long))
    x = torch.randn(4, 5)
    vae = VAE(input_shape=(5,), latent_dim=2, hidden_dims=[8], likelihood="heteroscedastic").eval()
    cae = CAE(input_shape=(5,), latent_dim=2, hidden_dims=[8]).eval()
    for model in (vae, cae):
        scorer = attach_scorer(model, Scorer("recon_mahalanobis"))
        fit_stats(scorer, model, train)
        with torch.no_grad():
            if model is vae:
                def residual(v):
                    mean, log_var = vae.decoder_distribution(vae.decode_logits(vae.posterior(v)[0]))
                    return (v - mean) / (0.5 * log_var).exp()
            else:
                def residual(v):
                    return v - cae.reconstruct(v)
            r_train, r = residual(train.inputs).double().numpy(), residual(x).double().numpy()
            got = scorer(model, x)
        cov = np.cov(r_train.T)
        precision = np.linalg.inv(cov + scorer.shrinkage * np.trace(cov) / 5 * np.eye(5))
        expected = [mahalanobis(row, r_train.mean(0), precision) for row in r]
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4)
        assert scorer.residual_precision.shape == (5, 5) and scorer.code_precision.shape == (2, 2)


def test_recon_mahalanobis_sees_a_broken_correlation_that_per_feature_errors_miss():
    """Two features that move together in the normal rows: rows where they move apart have the same
    per-feature residuals (``mse`` cannot tell them apart, AUROC ~0.5), but their residual vector lies off
    the training residuals' correlation (``recon_mahalanobis`` AUROC > 0.9)."""
    from sklearn.metrics import roc_auc_score

    g = torch.Generator().manual_seed(0)
    a = torch.randn(1000, 1, generator=g)
    normal = torch.cat([a, a + 0.1 * torch.randn(1000, 1, generator=g), torch.randn(1000, 2, generator=g)], 1)
    b = torch.randn(200, 1, generator=g)
    broken = torch.cat([b, -b, torch.randn(200, 2, generator=g)], 1)  # each feature still N(0, 1)
    cae = CAE(input_shape=(4,), latent_dim=2, hidden_dims=[8]).eval()
    last = [m for m in cae.decoder.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():  # an untrained decoder that reconstructs every row by the same constant
        last.weight.zero_()
    scorer = attach_scorer(cae, Scorer("recon_mahalanobis"))
    fit_stats(scorer, cae, InMemoryDataset(normal[:800], torch.zeros(800, dtype=torch.long)))
    test, labels = torch.cat([normal[800:], broken]), np.r_[np.zeros(200), np.ones(200)]
    with torch.no_grad():
        auroc_mse = roc_auc_score(labels, mse_score(cae, test).numpy())
        auroc_maha = roc_auc_score(labels, scorer(cae, test).numpy())
    assert abs(auroc_mse - 0.5) < 0.1 and auroc_maha > 0.9


def test_recon_mahalanobis_needs_the_residual_statistics():
    cae = CAE(input_shape=(4,), latent_dim=2, hidden_dims=[8]).eval()
    scorer = attach_scorer(cae, Scorer("recon_mahalanobis"))
    x = torch.randn(3, 4)
    with pytest.raises(RuntimeError, match="residual_mean, residual_precision"):
        scorer(cae, x)
    scorer.set_stats({"code_mean": torch.zeros(2), "code_precision": torch.eye(2),
                      "reference_codes": torch.zeros(5, 2)})
    with pytest.raises(RuntimeError, match="calibrate the scorer first"):  # latent statistics alone
        scorer(cae, x)
    with pytest.raises(ValueError, match="unknown scorer statistics"):
        scorer.set_stats({"residual_cov": torch.eye(4)})
    # fit_stats on an image model fits no residual statistics
    image_cae = CAE(input_shape=(1, 8, 8), channels=4, latent_dim=2, num_stages=2).eval()
    image_scorer = attach_scorer(image_cae, Scorer("mahalanobis"))
    fit_stats(image_scorer, image_cae, InMemoryDataset(torch.rand(10, 1, 8, 8), torch.zeros(10, dtype=torch.long)))
    assert image_scorer.residual_precision.numel() == 0 and image_scorer.code_precision.shape == (2, 2)


def test_backward_feature_subset_drops_the_features_that_hide_the_anomalies():
    """Feature 0 separates the anomalies; features 1-3 are noise that is large on some normal rows:
    elimination keeps feature 0 alone and the AUPRC climbs to 1."""
    rng = torch.Generator().manual_seed(0)
    n = 400
    labels = torch.zeros(n, dtype=torch.long)
    labels[:20] = 1
    scores = torch.rand(n, 4, generator=rng) * torch.tensor([1.0, 6.0, 6.0, 6.0])
    scores[:20, 0] += 2.0
    kept, path = backward_feature_subset(scores.numpy(), labels.numpy())
    assert kept == [0]
    assert path[0]["dropped"] is None and path[-1]["auprc"] == 1.0 > path[0]["auprc"]
    assert [p["auprc"] for p in path] == sorted(p["auprc"] for p in path)
    kept2, _ = backward_feature_subset(scores.numpy(), labels.numpy(), min_features=3)
    assert len(kept2) == 3 and 0 in kept2
    with pytest.raises(ValueError, match="both 0"):
        backward_feature_subset(scores.numpy(), torch.zeros(n).numpy())
    with pytest.raises(ValueError, match="min_features"):
        backward_feature_subset(scores.numpy(), labels.numpy(), min_features=5)


def test_recon_prob_is_higher_for_far_off_rows_after_a_short_fit(tmp_path):
    """A heteroscedastic VAE fitted on correlated rows gives rows far from that structure a higher
    ``recon_prob`` (more anomalous) than held-out normal rows."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2000, 2, generator=g)
    mixing = torch.randn(2, 8, generator=g)
    rows = z @ mixing + 0.05 * torch.randn(2000, 8, generator=g)
    train = InMemoryDataset(rows[:1600], torch.zeros(1600, dtype=torch.long))
    pl.seed_everything(0)
    vae = VAE(input_shape=(8,), latent_dim=2, hidden_dims=[16], likelihood="heteroscedastic", lr=1e-2)
    tiny_trainer(tmp_path, max_epochs=15).fit(vae, train_dataloaders=batch_loader(train, 128, True, 0))
    vae.eval()
    normal = rows[1600:1700]
    far = torch.randn(100, 8, generator=g) * 2.0  # no low-dimensional structure
    with torch.no_grad():
        s_normal, s_far = recon_prob_score(vae, normal, k=20), recon_prob_score(vae, far, k=20)
    assert s_far.median() > s_normal.quantile(0.95)
    assert math.isfinite(float(s_normal.max()))
