"""Equilibrium k-means (He 2024, arXiv:2402.14490) and the cluster metrics."""

import numpy as np
import pytest
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.metrics import adjusted_rand_score

from aelab.latent.clustering import (
    EquilibriumKMeans,
    cluster_metrics,
    default_alpha,
    equilibrium_weights,
    half_sq_distances,
)


def imbalanced_blobs(sizes, centers, stds, seed=0):
    """Isotropic 2-D Gaussian blobs: ``(X (N, 2), y (N,))``."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(c, s, size=(n, 2)) for n, c, s in zip(sizes, centers, stds)])
    return x, np.repeat(np.arange(len(sizes)), sizes)


# A large wide blob next to two small tight ones. k-means (10 restarts) pulls a centroid into the
# large blob (the "uniform effect"); EKM keeps one centroid per blob. Seeds 0-2 all show it.
TEN_ONE_ONE = dict(sizes=[1000, 100, 100], centers=[(0, 0), (4, 0), (0, 4)], stds=[1.0, 0.5, 0.5])
TWO_ONE_ONE = dict(sizes=[800, 200, 200], centers=[(0, 0), (3.5, 0), (0, 3.5)], stds=[1.0, 0.4, 0.4])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ekm_beats_kmeans_on_imbalanced_blobs_10_1_1(seed):
    x, y = imbalanced_blobs(**TEN_ONE_ONE, seed=seed)
    km = KMeans(3, n_init=10, random_state=seed).fit(x)
    ekm = EquilibriumKMeans(3, random_state=seed).fit(x)
    km_ari, ekm_ari = adjusted_rand_score(y, km.labels_), adjusted_rand_score(y, ekm.labels_)
    assert ekm_ari > km_ari + 0.05, (ekm_ari, km_ari)
    assert ekm_ari > 0.8
    assert ekm.converged_ and ekm.n_iter_ < 300
    # the large cluster keeps (nearly) all its points instead of losing some to the small ones' centroids
    assert max(np.bincount(ekm.labels_)) > max(np.bincount(km.labels_))


def test_ekm_beats_kmeans_on_imbalanced_blobs_2_1_1():
    x, y = imbalanced_blobs(**TWO_ONE_ONE, seed=0)
    km_ari = adjusted_rand_score(y, KMeans(3, n_init=10, random_state=0).fit_predict(x))
    ekm_ari = adjusted_rand_score(y, EquilibriumKMeans(3, random_state=0).fit_predict(x))
    assert ekm_ari > km_ari, (ekm_ari, km_ari)


def test_alpha_too_small_collapses_centroids_to_the_global_mean():
    x, _ = imbalanced_blobs(**TEN_ONE_ONE)
    ekm = EquilibriumKMeans(3, alpha=1e-4 * default_alpha(x), random_state=0).fit(x)
    spread = np.sqrt(x.var(0).sum())
    offsets = np.linalg.norm(ekm.cluster_centers_ - x.mean(0), axis=1)
    assert offsets.max() < 0.01 * spread
    np.testing.assert_allclose(ekm.weights_, 1 / 3, atol=1e-3)  # all weights ~ equal


def test_alpha_too_large_behaves_like_hard_kmeans():
    x, _ = imbalanced_blobs(**TEN_ONE_ONE)
    init, _ = kmeans_plusplus(x, 3, random_state=0)
    ekm = EquilibriumKMeans(3, alpha=1e4 * default_alpha(x), init=init).fit(x)
    lloyd = KMeans(3, init=init, n_init=1, algorithm="lloyd", tol=1e-10, max_iter=300).fit(x)
    np.testing.assert_array_equal(ekm.labels_, lloyd.labels_)
    np.testing.assert_allclose(ekm.cluster_centers_, lloyd.cluster_centers_, atol=1e-6)
    # weights are (numerically) one-hot at the nearest centroid
    np.testing.assert_allclose(ekm.weights_.max(1), 1.0, atol=1e-6)


def test_default_alpha_is_scale_free():
    x, _ = imbalanced_blobs(**TEN_ONE_ONE)
    a = EquilibriumKMeans(3, random_state=0).fit(x)
    b = EquilibriumKMeans(3, random_state=0).fit(1000.0 * x)
    assert b.alpha_ == pytest.approx(a.alpha_ / 1e6)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(b.cluster_centers_, 1000.0 * a.cluster_centers_, rtol=1e-6, atol=1e-6)


def test_weights_sum_to_one_and_softmax_is_stable():
    d = np.array([[1e6, 1e6 + 1.0, 1e6 + 50.0], [0.0, 3.0, 4.0]])
    w = equilibrium_weights(d, alpha=1.0)
    assert np.isfinite(w).all()
    np.testing.assert_allclose(w.sum(1), 1.0)
    assert (w < 0).any()  # the repulsion: weights of far centroids can be negative
    # equation check against the formula written out with an unshifted softmax (small distances)
    d = np.array([[0.5, 1.0, 2.0]])
    p = np.exp(-2.0 * d) / np.exp(-2.0 * d).sum()
    np.testing.assert_allclose(equilibrium_weights(d, 2.0), p * (1 - 2.0 * (d - (p * d).sum())))
    x, c = np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([[1.0, 0.0]])
    np.testing.assert_allclose(half_sq_distances(x, c), [[0.5], [0.5]])


def test_sklearn_like_api_and_errors():
    x, _ = imbalanced_blobs(**TWO_ONE_ONE)
    ekm = EquilibriumKMeans(n_clusters=3, max_iter=100, tol=1e-4, random_state=0)
    labels = ekm.fit_predict(x)
    assert labels.shape == (len(x),) and labels.dtype == np.int64
    assert ekm.cluster_centers_.shape == (3, 2) and ekm.n_iter_ >= 1
    np.testing.assert_array_equal(ekm.predict(x), labels)
    with pytest.raises(RuntimeError, match="not fitted"):
        EquilibriumKMeans(3).predict(x)
    with pytest.raises(ValueError, match="alpha"):
        EquilibriumKMeans(3, alpha=-1.0).fit(x)
    with pytest.raises(ValueError, match="n_clusters"):
        EquilibriumKMeans(5).fit(x[:3])
    with pytest.raises(ValueError, match="features"):
        ekm.predict(np.zeros((2, 3)))


def test_cluster_metrics():
    labels = np.array([0, 0, 1, 1, 2, 2])
    m = cluster_metrics(labels, np.array([2, 2, 0, 0, 1, 1]))
    assert m["nmi"] == pytest.approx(1.0) and m["ari"] == pytest.approx(1.0) and m["sizes"] == [2, 2, 2]
    m = cluster_metrics(labels, np.zeros(6, dtype=int))
    assert m["nmi"] == pytest.approx(0.0) and m["ari"] == pytest.approx(0.0) and m["sizes"] == [6]
