"""EMA of the weights (aelab.weight_averaging.EMAWeights): checkpoints and testing after fit."""

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from aelab.data import Fashion5DataModule
from aelab.models import SemiSupervisedVAE
from aelab.weight_averaging import EMAWeights, ema_avg_fn

SMALL5 = dict(num_unlabeled=150, num_labeled=40, num_test_normal=60, num_anomalies=20,
              download=False, verify=False, batch_size=32, labeled_batch_size=8)


def test_test_after_fit_uses_ema_weights(fake_data_dir, tmp_path):
    """The checkpoint's ``state_dict`` holds the EMA weights and ``current_model_state`` the raw ones;
    ``trainer.test(ckpt_path=...)`` in the same run as ``fit`` must measure the EMA weights."""
    dm = Fashion5DataModule(data_dir=str(fake_data_dir), **SMALL5)
    model = SemiSupervisedVAE(num_classes=5, channels=4, latent_dim=4, hidden_dim=16, lr=1e-2)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="ema")
    trainer = pl.Trainer(default_root_dir=tmp_path, logger=False, max_epochs=1, limit_train_batches=4,
                         enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[EMAWeights(decay=0.5), checkpoint])
    trainer.fit(model, dm)
    saved = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
    ema, raw = saved["state_dict"], saved["current_model_state"]
    name = "classifier.0.weight"
    assert not torch.equal(ema[name], raw[name])  # 4 steps at decay 0.5: the average lags the weights

    # spoil the in-memory weights, then test from the checkpoint: the EMA weights must come back
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    trainer.test(model, dm, ckpt_path=checkpoint.best_model_path)
    assert torch.equal(model.state_dict()[name], ema[name])


def test_ema_decay_warms_up():
    """d_t = min(decay, (1 + t) / (10 + t)): 2/11 after the first update, ``decay`` once t is large."""
    update = ema_avg_fn(0.9)
    ema, current = torch.zeros(3), torch.ones(3)
    assert torch.allclose(update(ema, current, torch.tensor(1)), torch.full((3,), 1 - 2 / 11))
    assert torch.allclose(update(ema, current, torch.tensor(1000)), torch.full((3,), 0.1))


def test_ema_decay_is_checked():
    with pytest.raises(ValueError, match="decay must be in"):
        EMAWeights(decay=1.0)
