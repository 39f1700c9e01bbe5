import pytest
import torch

from aelab.nets import ConvDecoder, ConvEncoder, conv_output_sizes, mlp


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 32, 32), (3, 64, 64), (3, 96, 96), (1, 28, 40)])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_encoder_decoder_shapes(shape, batch_norm):
    enc = ConvEncoder(shape, channels=4, out_dim=6, hidden_dim=16, batch_norm=batch_norm)
    dec = ConvDecoder(shape, channels=4, latent_dim=6, hidden_dim=16, batch_norm=batch_norm)
    x = torch.rand(5, *shape)
    z = enc(x)
    assert z.shape == (5, 6)
    y = dec(z)
    assert y.shape == (5, *shape)
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_published_cae_layout():
    enc = ConvEncoder((1, 28, 28), channels=8, out_dim=14, hidden_dim=64)
    convs = [m for m in enc.conv if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32]
    assert all(c.stride == (2, 2) and c.kernel_size == (3, 3) for c in convs)
    assert enc.feature_shape == (32, 4, 4)
    assert conv_output_sizes(28, 3) == [28, 14, 7, 4]


def test_encoder_rejects_wrong_image_shape():
    enc = ConvEncoder((1, 28, 28))
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        enc(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="image_shape"):
        ConvEncoder((28, 28))


def test_mlp_layout():
    net = mlp([10, 256, 64, 5], dropout=0.2)
    assert net(torch.rand(3, 10)).shape == (3, 5)
    assert sum(isinstance(m, torch.nn.Dropout) for m in net) == 2


@pytest.mark.parametrize("shape, stages", [((3, 64, 64), 4), ((3, 96, 96), 5), ((3, 128, 128), 5), ((3, 96, 96), 3)])
def test_larger_rgb_images(shape, stages):
    """Stages, LeakyReLU and a larger first kernel: encoder and decoder retrace the sizes exactly."""
    enc = ConvEncoder(shape, channels=4, out_dim=8, hidden_dim=16, num_stages=stages, activation="leaky_relu",
                      first_kernel=5, first_stride=2)
    dec = ConvDecoder(shape, channels=4, latent_dim=8, hidden_dim=16, num_stages=stages, activation="leaky_relu",
                      first_kernel=5, first_stride=2)
    x = torch.rand(2, *shape)
    assert enc(x).shape == (2, 8) and dec(enc(x)).shape == (2, *shape)
    assert sum(isinstance(m, torch.nn.LeakyReLU) for m in enc.conv) == stages
    side = shape[1]
    for _ in range(stages):
        side = (side - 1) // 2 + 1
    assert enc.feature_shape == (4 * 2 ** (stages - 1), side, side)
    with pytest.raises(ValueError, match="activation"):
        ConvEncoder(shape, activation="gelu")


def test_decoder_channels_thin_the_decoder_only():
    """A VAE with decoder_channels keeps the encoder's width, thins the decoder and still reconstructs
    the full image; a width below 1 or one given for table rows is refused."""
    from aelab.models import VAE
    from aelab.nets import autoencoder_nets

    vae = VAE(input_shape=(1, 28, 28), channels=12, decoder_channels=4, latent_dim=6, hidden_dim=16)
    enc_out = [m.out_channels for m in vae.encoder.conv if isinstance(m, torch.nn.Conv2d)]
    dec_out = [m.out_channels for m in vae.decoder.deconv if isinstance(m, torch.nn.ConvTranspose2d)]
    assert enc_out == [12, 24, 48] and dec_out == [8, 4, 1]
    assert vae.decoder.feature_shape == (16, 4, 4)
    x = torch.rand(3, 1, 28, 28)
    mu, _ = vae.posterior(x)
    assert vae.decoder(mu).shape == (3, 1, 28, 28)
    with pytest.raises(ValueError, match="decoder_channels"):
        autoencoder_nets((1, 28, 28), 6, 6, channels=8, decoder_channels=0)
    with pytest.raises(ValueError, match="table rows"):
        autoencoder_nets((29,), 6, 6, decoder_channels=8)


def test_vae_training_step_runs_the_decoder_once():
    """A training step of the VAE decodes once (the sampled codes); the posterior mean's reconstruction
    (``mse``) is computed outside training only, where it is logged."""
    from aelab.models import VAE

    vae = VAE(input_shape=(1, 28, 28), channels=4, latent_dim=3, hidden_dim=8)
    calls = []
    vae.decoder.register_forward_hook(lambda *_: calls.append(1))
    x = torch.rand(4, 1, 28, 28)
    vae.train()
    out = vae.losses({"input": x})
    assert len(calls) == 1 and "mse" not in out
    vae.eval()
    with torch.no_grad():
        out = vae.losses({"input": x})
    assert len(calls) == 3 and out["mse"] > 0
