import subprocess
import sys

import lightning.pytorch as pl
import pytest
import torch

from aelab.data import FashionMNISTDataModule
from aelab.models import CAE

from helpers import tiny_trainer


def test_cae_fit_decreases_loss(fake_data_dir, tmp_path):
    pl.seed_everything(0)
    dm = FashionMNISTDataModule(str(fake_data_dir), download=False, verify=False, val_size=50, batch_size=32)
    model = CAE(channels=8, latent_dim=6, hidden_dim=32, lr=1e-2)
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    with torch.no_grad():
        before = model.losses(batch)["loss"].item()
    tiny_trainer(tmp_path, max_epochs=4).fit(model, dm)
    with torch.no_grad():
        after = model.losses(batch)["loss"].item()
    assert after < 0.6 * before
    assert model.encode(batch["input"]).shape == (len(batch["input"]), 6)


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


def test_import_flushes_denormals_in_every_thread():
    """``import aelab`` turns on flush-to-zero before PyTorch starts its OpenMP threads, so a
    2-thread elementwise op on subnormal values gives zeros in both halves (subnormals slow CPU
    training several-fold; see aelab.denormals)."""
    code = (
        "import aelab, numpy as np, torch\n"
        "torch.set_num_threads(2)\n"
        "x = torch.from_numpy(np.full(4_000_000, 1e-39, np.float32))\n"
        "print((x * 1.0).count_nonzero().item())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"
    control = subprocess.run([sys.executable, "-c", code.replace("import aelab, ", "import ")],
                             capture_output=True, text=True, check=True)
    assert control.stdout.strip() == "4000000"  # without aelab the subnormals survive


def test_setup_flushes_denormals():
    """Model setup turns flush-to-zero back on in the main thread if something turned it off."""
    torch.set_flush_denormal(False)
    try:
        tiny = torch.tensor([1e-39])  # subnormal in float32
        assert (tiny * 1.0).item() > 0
        CAE(channels=2, latent_dim=2, hidden_dim=0).setup("fit")
        assert (tiny * 1.0).item() == 0.0
    finally:
        torch.set_flush_denormal(True)
