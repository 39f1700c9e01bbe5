"""Linear separability of the codes: a logistic-regression probe.

A multinomial logistic regression (scikit-learn ``LogisticRegression``, L2, ``C=1``, lbfgs) on
standardised codes (``StandardScaler``), fitted on codes of the training split and scored (accuracy,
fraction in [0, 1]) on the codes of the evaluated split. High accuracy means the classes are
(nearly) linearly separable in the code space; the autoencoder never saw the labels.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler


def linear_probe(
    train_codes: np.ndarray,
    train_labels: np.ndarray,
    test_codes: np.ndarray,
    test_labels: np.ndarray,
    seed: int = 0,
    max_iter: int = 1000,
) -> dict:
    """Fits ``StandardScaler + LogisticRegression`` on ``(train_codes (N, D), train_labels (N,))`` and scores
    it on ``(test_codes (M, D), test_labels (M,))``. Items with label ``-1`` (unknown) are left out.

    Returns:
        ``{"accuracy": fraction correct on the test codes, "train_accuracy": on the fitting codes,
        "n_train": int, "n_test": int, "pipeline": the fitted sklearn Pipeline}``.

    Raises:
        ValueError: if fewer than two classes are labelled in the training codes, or no test code is.
    """
    tr = np.asarray(train_labels) >= 0
    te = np.asarray(test_labels) >= 0
    x_tr, y_tr = np.asarray(train_codes)[tr], np.asarray(train_labels)[tr]
    x_te, y_te = np.asarray(test_codes)[te], np.asarray(test_labels)[te]
    if len(np.unique(y_tr)) < 2:
        raise ValueError("the linear probe needs labelled training codes of at least two classes")
    if len(y_te) == 0:
        raise ValueError("the linear probe needs labelled codes to score")
    probe: Pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, random_state=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(x_tr, y_tr)
    return {
        "accuracy": float(probe.score(x_te, y_te)),
        "train_accuracy": float(probe.score(x_tr, y_tr)),
        "n_train": int(len(y_tr)),
        "n_test": int(len(y_te)),
        "pipeline": probe,
    }
