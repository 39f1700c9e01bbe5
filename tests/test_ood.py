"""A second data set as out-of-distribution input, and the input-complexity score."""

import math

import pytest
import torch

from aelab.data import Fashion5DataModule, OneClassDataModule, SklearnDigits
from aelab.data.protocols.anomaly import OOD
from aelab.models import CAE, VAE
from aelab.scoring import applicable_scores
from aelab.scoring.functions import complexity_score, iwae_score, png_bits

from helpers import fashion5_kwargs


def test_sklearn_digits_source():
    digits = SklearnDigits(image_size=28).load()
    assert digits.images.shape == (1797, 1, 28, 28) and digits.images.dtype == torch.uint8
    assert digits.class_names == tuple(str(k) for k in range(10)) and int(digits.labels.max()) == 9
    assert int(digits.images.max()) > 200  # 0..16 grey levels scaled to 0..255
    rgb = SklearnDigits(image_size=32, channels=3).load().images
    assert rgb.shape == (1797, 3, 32, 32) and torch.equal(rgb[:, 0], rgb[:, 2])


def test_ood_images_join_the_test_set(fake_data_dir):
    dm = Fashion5DataModule(**fashion5_kwargs(fake_data_dir), anomaly_kind="occlusion", ood=SklearnDigits(28),
                            num_ood=30)
    dm.setup("fit")
    types = dm.test_set.extras["anomaly_type"]
    assert int((types == OOD).sum()) == 30 and int(dm.test_set.extras["anomaly"][types == OOD].min()) == 1
    assert (dm.test_set.labels[types == OOD] == -1).all()
    only = OneClassDataModule([0, 1], anomaly_kind="ood", ood=SklearnDigits(28, invert=True), num_ood=15,
                              data_dir=str(fake_data_dir), download=False, verify=False)
    only.setup("fit")
    assert set(only.test_set.extras["anomaly_type"].tolist()) == {0, OOD}
    with pytest.raises(ValueError, match="needs an `ood` source"):
        OneClassDataModule([0], anomaly_kind="ood")


def test_png_bits_grow_with_image_complexity():
    flat = torch.full((1, 1, 28, 28), 0.5)
    noise = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    bits = png_bits(torch.cat([flat, noise]))
    assert bits[1] > 4 * bits[0] and bits[1] > 28 * 28 * 6  # noise barely compresses (8 bits a pixel)


@torch.no_grad()
def test_complexity_score_on_a_tiny_vae():
    torch.manual_seed(0)
    vae = VAE(channels=4, latent_dim=3, hidden_dim=16).eval()
    assert "complexity" in applicable_scores(vae) and "complexity" not in applicable_scores(CAE())
    x = torch.rand(5, 1, 28, 28)
    torch.manual_seed(1)
    s = complexity_score(vae, x, k=4)
    torch.manual_seed(1)
    expected = iwae_score(vae, x, 4).double() / math.log(2) - png_bits(x)  # Bernoulli: no bin-width term
    assert s.shape == (5,) and s.dtype == torch.float64
    torch.testing.assert_close(s, expected)
    gaussian = VAE(channels=4, latent_dim=3, hidden_dim=16, likelihood="gaussian").eval()
    torch.manual_seed(1)
    with_bins = complexity_score(gaussian, x, k=4)
    torch.manual_seed(1)
    plain = iwae_score(gaussian, x, 4).double() / math.log(2) - png_bits(x)
    torch.testing.assert_close(with_bins - plain, torch.full((5,), 28 * 28 * 8.0, dtype=torch.float64))
