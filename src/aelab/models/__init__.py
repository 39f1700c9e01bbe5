"""LightningModules, one per file."""

from aelab.models.base import AutoencoderModule
from aelab.models.cae import CAE
from aelab.models.vae import VAE

__all__ = ["AutoencoderModule", "CAE", "VAE"]
