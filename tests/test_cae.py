import lightning.pytorch as pl
import pytest
import torch

from aelab.data import FashionMNISTDataModule
from aelab.models import CAE


def tiny_trainer(tmp_path, **kw):
    kw.setdefault("max_epochs", 1)
    return pl.Trainer(default_root_dir=tmp_path, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, **kw)


def test_cae_fit_decreases_loss(fake_data_dir, tmp_path):
    pl.seed_everything(0)
    dm = FashionMNISTDataModule(str(fake_data_dir), download=False, verify=False, val_size=50, batch_size=32)
    model = CAE(channels=8, latent_dim=6, hidden_dim=32, lr=1e-2)
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    with torch.no_grad():
        before = model.losses(batch)["loss"].item()
    tiny_trainer(tmp_path, max_epochs=8).fit(model, dm)
    with torch.no_grad():
        after = model.losses(batch)["loss"].item()
    assert after < 0.6 * before
    assert model.encode(batch["image"]).shape == (len(batch["image"]), 6)


def test_cae_onecycle_and_bad_args(fake_data_dir, tmp_path):
    dm = FashionMNISTDataModule(str(fake_data_dir), download=False, verify=False, val_size=50, batch_size=64)
    model = CAE(channels=4, latent_dim=4, hidden_dim=16, scheduler="onecycle")
    tiny_trainer(tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=1).fit(model, dm)
    with pytest.raises(ValueError, match="scheduler must be one of"):
        CAE(scheduler="step")


def test_nan_loss_raises_clear_error(fake_data_dir, tmp_path):
    dm = FashionMNISTDataModule(str(fake_data_dir), download=False, verify=False, val_size=50, batch_size=64)
    model = CAE(channels=4, latent_dim=4, hidden_dim=16)
    with torch.no_grad():
        model.decoder.deconv[0].weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="train loss is nan.*model.lr"):
        tiny_trainer(tmp_path, limit_train_batches=1, limit_val_batches=0).fit(model, dm)


def test_setup_flushes_denormals():
    """Every aelab model turns on flush-to-zero: subnormal floats slow CPU training several-fold."""
    torch.set_flush_denormal(False)
    try:
        tiny = torch.tensor([1e-39])  # subnormal in float32
        assert (tiny * 1.0).item() > 0
        CAE(channels=2, latent_dim=2, hidden_dim=0).setup("fit")
        assert (tiny * 1.0).item() == 0.0
    finally:
        torch.set_flush_denormal(False)
