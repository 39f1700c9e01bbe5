"""LightningModules, one per file: :class:`CAE`, :class:`VAE`, :class:`SemiSupervisedVAE`,
:class:`EncoderClassifier`, on :class:`AelabModule` / :class:`AutoencoderModule`; heads
(``transform_head``: geometric-transformation prediction; ``tta``: test-time shift averaging) and
``class_metrics`` (accuracy / F1 / confusion matrix). Models receive what they need and never read
files or reach into a datamodule."""

from aelab.models.autoencoder import AutoencoderModule
from aelab.models.base import AelabModule
from aelab.models.cae import CAE
from aelab.models.classifier import EncoderClassifier
from aelab.models.semisup import SemiSupervisedVAE
from aelab.models.vae import VAE

__all__ = ["AelabModule", "AutoencoderModule", "CAE", "EncoderClassifier", "SemiSupervisedVAE", "VAE"]
