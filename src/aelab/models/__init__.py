"""LightningModules, one per file."""

from aelab.models.base import AelabModule, AutoencoderModule
from aelab.models.cae import CAE
from aelab.models.classifier import EncoderClassifier
from aelab.models.semisup import SemiSupervisedVAE
from aelab.models.vae import VAE

__all__ = ["AelabModule", "AutoencoderModule", "CAE", "EncoderClassifier", "SemiSupervisedVAE", "VAE"]
