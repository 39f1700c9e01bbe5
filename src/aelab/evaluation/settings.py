"""The settings of ``aelab evaluate`` (its flags; see :mod:`aelab.commands.settings`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass
class EvaluateSettings:
    """Settings of ``aelab evaluate``.

    Args:
        output_dir: where ``metrics.json``, ``report.md``, ``predictions.csv``, the PNG figures and
            ``scored.ckpt`` (the checkpoint with the scorer fitted here) go; default ``<run>/evaluate``.
        scores: score names (default: every score that applies to the model; see aelab.scoring).
        k_samples: samples of ``neg_elbo_k`` and ``recon_prob`` (default: the registry's).
        iwae_samples: importance samples of ``iwae`` (default 64).
        local_sigma: Gaussian smoothing (pixels) of the ``local_error`` map (default 1).
        local_top_k: ``local_error`` averages the top-k percent of the map (0 = its maximum).
        local_residual: the ``local_error`` map: ``squared``, ``absolute``, ``darker`` (input darker than
            its reconstruction: black occlusions) or ``brighter``.
        knn_k: neighbours of the ``knn`` score (default 5).
        num_images: images per figure row.
        batch_size: items per scoring batch.
        seed: seeds the sampling scores, the reference codes and the random image choice.

    A score setting left unset takes the scorer's own setting (for its score) or the registry's default.
    """

    output_dir: str | None = None
    scores: list[str] | None = None
    k_samples: int | None = None
    iwae_samples: int | None = None
    local_sigma: float | None = None
    local_top_k: float | None = None
    local_residual: Literal["squared", "absolute", "darker", "brighter"] | None = None
    knn_k: int | None = None
    num_images: int = 8
    batch_size: int = 256
    seed: int = 0

    def overrides(self, name: str) -> dict[str, Any]:
        """The settings of score ``name`` given on the command line."""
        given = {"neg_elbo_k": {"k": self.k_samples}, "recon_prob": {"k": self.k_samples},
                 "iwae": {"k": self.iwae_samples}, "knn": {"k": self.knn_k},
                 "local_error": {"sigma": self.local_sigma, "top_k": self.local_top_k,
                                 "residual": self.local_residual}}.get(name, {})
        return {k: v for k, v in given.items() if v is not None}
