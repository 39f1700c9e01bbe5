"""Clustering of latent codes: equilibrium k-means and cluster-vs-label metrics.

Equilibrium k-means (EKM) is from

    Y. He, "Imbalanced Data Clustering using Equilibrium K-Means", arXiv:2402.14490 (2024).

k-means (hard or fuzzy) has a "uniform effect": centroids of small clusters are pulled into large
clusters, because every point of a large cluster pulls with the same strength. EKM replaces the
hard assignment with Boltzmann (softmax) weights and adds a correction term that makes a centroid
*repel* points that are already well explained by another centroid, so that a large cluster does not
capture the centroids of small neighbouring ones. With

    d_kn = ||x_n - c_k||^2 / 2                                   (half squared Euclidean distance)
    p_kn = exp(-alpha d_kn) / sum_i exp(-alpha d_in)              (softmax over the K centroids)
    w_kn = p_kn * (1 - alpha * (d_kn - sum_i p_in d_in))          (equilibrium weight, may be < 0)

the centroids are updated by the fixed-point iteration

    c_k = sum_n w_kn x_n / sum_n w_kn

(the stationarity condition of the EKM objective, a sum over points of the Boltzmann operator of
their distances; the paper's centroid-update equation), alternated with the weights until the
centroids stop moving. Points are assigned to their nearest centroid (``argmin_k d_kn``).

Note ``sum_k w_kn = 1`` for every point, but single weights may be negative: that is the repulsion.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import kmeans_plusplus
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.utils import check_random_state

__all__ = ["EquilibriumKMeans", "default_alpha", "half_sq_distances", "equilibrium_weights", "cluster_metrics"]


def half_sq_distances(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """``d_kn = ||x_n - c_k||^2 / 2`` as an ``(N, K)`` array (float64, clipped at 0).

    Args:
        x: points ``(N, D)``.
        centers: centroids ``(K, D)``.
    """
    d = (x * x).sum(1)[:, None] + (centers * centers).sum(1)[None, :] - 2.0 * x @ centers.T
    return np.maximum(d, 0.0) / 2.0


def equilibrium_weights(d: np.ndarray, alpha: float) -> np.ndarray:
    """Equilibrium weights ``w`` ``(N, K)`` from half squared distances ``d`` ``(N, K)`` (He 2024).

    ``p = softmax(-alpha d)`` per row, computed stably (the row minimum of ``d`` is subtracted
    before ``exp``, which changes neither ``p`` nor ``w``);
    ``w = p * (1 - alpha * (d - sum_k p d))``. Rows of ``w`` sum to 1; entries may be negative.
    """
    shifted = d - d.min(axis=1, keepdims=True)
    e = np.exp(-alpha * shifted)
    p = e / e.sum(axis=1, keepdims=True)
    mean_d = (p * shifted).sum(axis=1, keepdims=True)
    return p * (1.0 - alpha * (shifted - mean_d))


def default_alpha(x: np.ndarray) -> float:
    """The scale-free default ``alpha = 2 / mean_j Var(x_j)`` (``Var(x_j)``: variance of feature ``j``).

    For 2-D data this is the "dvariance" heuristic of the paper author's reference implementation
    (``alpha = 2 / mean_n ||x_n - mean(x)||^2`` there, with distances that are not halved, i.e.
    ``4 / mean ||x_n - mean(x)||^2`` in this module's halved distances). Dividing by the *mean per-feature*
    variance instead of the total variance keeps ``alpha * d`` from shrinking with the number of
    features: in 14-D blobs the total-variance version sets alpha about 7 times too small and merges
    centroids, this one does not (checked on ``make_blobs`` data, 3 to 10 clusters, 2 to 14 features).
    Multiplying the data by ``s`` divides ``alpha`` by ``s^2``, so the clustering does not depend on the
    units of ``x``.
    """
    x = np.asarray(x, dtype=np.float64)
    mean_var = float(x.var(axis=0).mean())
    return 2.0 / max(mean_var, np.finfo(np.float64).tiny)


class EquilibriumKMeans:
    """Equilibrium k-means (Y. He 2024, arXiv:2402.14490), a scikit-learn-like estimator.

    See the module docstring for the equations. One run from a k-means++ initialisation
    (``sklearn.cluster.kmeans_plusplus``), then the fixed-point iteration
    ``w = equilibrium_weights(d(x, c), alpha)``, ``c_k = sum_n w_kn x_n / sum_n w_kn`` until the
    squared centroid shift ``sum_k ||c_k^new - c_k||^2`` is at most ``tol`` times the mean per-feature
    variance of ``x`` (scikit-learn's ``KMeans`` convention), or ``max_iter`` iterations. A centroid
    whose weight sum ``sum_n w_kn`` is (numerically) zero keeps its position for that step.

    The role of ``alpha`` (an inverse temperature, in units of 1 / squared data units):

    * ``alpha -> 0``: ``p_kn -> 1/K`` and ``w_kn -> 1/K`` for every point, so every centroid becomes
      the (unweighted) mean of all the data: the centroids *collapse toward the global mean* and the
      clustering is meaningless (the assignment is arbitrary).
    * ``alpha -> infinity``: ``p`` and ``w`` become one-hot at the nearest centroid (the correction term
      vanishes exponentially), so the update is Lloyd's step: EKM *behaves like hard k-means* and
      loses its advantage on imbalanced data.
    * In between, EKM resists the uniform effect of k-means. ``alpha=None`` uses
      :func:`default_alpha` (``2 / mean per-feature variance``, scale-free).

    Args:
        n_clusters: number of clusters ``K``.
        alpha: inverse temperature (> 0), or ``None`` for :func:`default_alpha` of the data.
        max_iter: maximum number of centroid updates.
        tol: relative convergence tolerance (see above).
        random_state: seed (or ``numpy.random.RandomState``) of the k-means++ initialisation.
        init: ``"k-means++"`` or an array of initial centroids ``(n_clusters, n_features)``.

    Attributes:
        cluster_centers_: ``(K, D)`` float64 centroids.
        labels_: ``(N,)`` int64, nearest centroid of each training point.
        n_iter_: number of centroid updates run.
        alpha_: the ``alpha`` used.
        weights_: ``(N, K)`` equilibrium weights of the training points at the final centroids.
        converged_: whether ``tol`` was reached within ``max_iter``.
    """

    def __init__(
        self,
        n_clusters: int = 8,
        alpha: float | None = None,
        max_iter: int = 300,
        tol: float = 1e-4,
        random_state: int | np.random.RandomState | None = None,
        init: str | np.ndarray = "k-means++",
    ) -> None:
        self.n_clusters = n_clusters
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.init = init

    # -- sklearn-like API -----------------------------------------------------------------------
    def fit(self, x: np.ndarray, y=None) -> EquilibriumKMeans:
        """Fits the centroids to points ``x`` ``(N, D)``; returns ``self``."""
        x = self._check_x(x)
        n, dim = x.shape
        if not (isinstance(self.n_clusters, (int, np.integer)) and 1 <= self.n_clusters <= n):
            raise ValueError(f"n_clusters must be an int in 1..{n} (the number of points), got {self.n_clusters!r}")
        if self.max_iter < 1 or self.tol < 0:
            raise ValueError(f"need max_iter >= 1 and tol >= 0, got {self.max_iter}, {self.tol}")
        alpha = default_alpha(x) if self.alpha is None else float(self.alpha)
        if not (np.isfinite(alpha) and alpha > 0):
            raise ValueError(f"alpha must be a finite number > 0 (or None for the default), got {self.alpha!r}")

        centers = self._initial_centers(x)
        tol_abs = self.tol * float(x.var(axis=0).mean())
        converged = False
        it = 0
        for it in range(1, self.max_iter + 1):
            w = equilibrium_weights(half_sq_distances(x, centers), alpha)  # (N, K)
            mass = w.sum(axis=0)  # (K,)
            ok = np.abs(mass) > 1e-12 * n
            new = centers.copy()
            new[ok] = (w[:, ok].T @ x) / mass[ok, None]
            shift = float(((new - centers) ** 2).sum())
            centers = new
            if shift <= tol_abs:
                converged = True
                break
        d = half_sq_distances(x, centers)
        self.cluster_centers_ = centers
        self.labels_ = d.argmin(axis=1).astype(np.int64)
        self.weights_ = equilibrium_weights(d, alpha)
        self.n_iter_ = it
        self.alpha_ = alpha
        self.converged_ = converged
        self.n_features_in_ = dim
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Nearest fitted centroid of each point of ``x`` ``(N, D)``: ``(N,)`` int64."""
        if not hasattr(self, "cluster_centers_"):
            raise RuntimeError("EquilibriumKMeans is not fitted yet: call fit(x) first")
        x = self._check_x(x)
        if x.shape[1] != self.n_features_in_:
            raise ValueError(f"x has {x.shape[1]} features, the model was fitted on {self.n_features_in_}")
        return half_sq_distances(x, self.cluster_centers_).argmin(axis=1).astype(np.int64)

    def fit_predict(self, x: np.ndarray, y=None) -> np.ndarray:
        """``fit(x).labels_``."""
        return self.fit(x).labels_

    def get_params(self, deep: bool = True) -> dict:
        return {"n_clusters": self.n_clusters, "alpha": self.alpha, "max_iter": self.max_iter,
                "tol": self.tol, "random_state": self.random_state, "init": self.init}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if not isinstance(v, np.ndarray))
        return f"EquilibriumKMeans({params})"

    # -- helpers --------------------------------------------------------------------------------
    @staticmethod
    def _check_x(x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"x must be a non-empty (N, D) array, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("x contains NaN or infinite values")
        return x

    def _initial_centers(self, x: np.ndarray) -> np.ndarray:
        if isinstance(self.init, str):
            if self.init != "k-means++":
                raise ValueError(f"init must be 'k-means++' or an (n_clusters, n_features) array, got {self.init!r}")
            centers, _ = kmeans_plusplus(x, self.n_clusters, random_state=check_random_state(self.random_state))
            return centers.astype(np.float64)
        centers = np.array(self.init, dtype=np.float64)
        if centers.shape != (self.n_clusters, x.shape[1]):
            raise ValueError(f"init array must have shape {(self.n_clusters, x.shape[1])}, got {centers.shape}")
        return centers


def cluster_metrics(labels: np.ndarray, clusters: np.ndarray) -> dict:
    """Agreement of a clustering with the true classes.

    Args:
        labels: true classes ``(N,)``.
        clusters: cluster ids ``(N,)``.

    Returns:
        ``{"nmi": normalized mutual information (arithmetic mean, sklearn's default), "ari": adjusted
        Rand index, "sizes": points per cluster id 0..max (list of ints, largest id present)}``.
    """
    labels = np.asarray(labels)
    clusters = np.asarray(clusters)
    if labels.shape != clusters.shape or labels.ndim != 1:
        raise ValueError(f"labels and clusters must be (N,) arrays of one length, got {labels.shape}, {clusters.shape}")
    return {
        "nmi": float(normalized_mutual_info_score(labels, clusters)),
        "ari": float(adjusted_rand_score(labels, clusters)),
        "sizes": np.bincount(clusters.astype(np.int64)).tolist() if len(clusters) else [],
    }
