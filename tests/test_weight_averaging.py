"""EMA of the weights (aelab.training.EMAWeights): checkpoints and testing after fit."""

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from aelab.data import Fashion5DataModule
from aelab.models import SemiSupervisedVAE
from aelab.training.ema import EMAWeights, ema_multi_avg_fn

from helpers import fashion5_kwargs



def test_test_after_fit_uses_ema_weights(fake_data_dir, tmp_path):
    """The checkpoint's ``state_dict`` holds the EMA weights and ``current_model_state`` the raw ones;
    ``trainer.test(ckpt_path=...)`` in the same run as ``fit`` must measure the EMA weights."""
    dm = Fashion5DataModule(**fashion5_kwargs(fake_data_dir, labeled_batch_size=8))
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
    update = ema_multi_avg_fn(0.9)
    for t, expected in ((1, 1 - 2 / 11), (1000, 0.1)):
        ema, current = [torch.zeros(3), torch.zeros(2, 2)], [torch.ones(3), torch.ones(2, 2)]
        update(ema, current, torch.tensor(t))
        assert all(torch.allclose(e, torch.full_like(e, expected)) for e in ema)
    counts = [torch.tensor(3)]  # integer buffers (BatchNorm's num_batches_tracked) take the current value
    update(counts, [torch.tensor(7)], torch.tensor(5))
    assert counts[0].item() == 7


def test_ema_decay_is_checked():
    with pytest.raises(ValueError, match="decay must be in"):
        EMAWeights(decay=1.0)


def test_ema_pseudo_labels_come_from_the_averaged_weights():
    """``pseudo_labels="ema"``: the teacher (EMA copy, eval mode) gives the pseudo-labels, not the student."""
    from torch.optim.swa_utils import AveragedModel

    torch.manual_seed(0)
    model = SemiSupervisedVAE(num_classes=5, channels=4, latent_dim=4, hidden_dim=16, dropout=0.5,
                              consistency=1.0, pseudo_labels="ema").train()
    ema = EMAWeights()
    ema._average_model = AveragedModel(model)
    teacher = ema.averaged_module
    with torch.no_grad():
        teacher.classifier[-1].bias.copy_(torch.tensor([0.0, 0.0, 0.0, 50.0, 0.0]))  # the teacher says class 3
    model._trainer = pl.Trainer(logger=False, callbacks=[ema], enable_progress_bar=False)
    x = torch.rand(16, 1, 28, 28)
    mu = model.encode(x)
    probs = model.pseudo_label_probs(x, mu)
    assert probs.shape == (16, 5)
    assert (probs.argmax(-1) == 3).all() and (probs.max(-1).values > 0.99).all()
    assert not (model.classifier(mu).argmax(-1) == 3).all()  # the student would not
    assert torch.equal(probs, model.pseudo_label_probs(x, mu))  # eval mode: no dropout
    assert teacher.training  # its mode is restored
    model.pseudo_labels = "student"
    assert not torch.equal(model.pseudo_label_probs(x, mu), probs)


def test_ema_pseudo_labels_need_the_callback(fake_data_dir, tmp_path):
    dm = Fashion5DataModule(**fashion5_kwargs(fake_data_dir, labeled_batch_size=8))
    model = SemiSupervisedVAE(num_classes=5, channels=4, latent_dim=4, hidden_dim=16, consistency=1.0,
                              pseudo_labels="ema")
    trainer = pl.Trainer(default_root_dir=tmp_path, logger=False, max_epochs=1, limit_train_batches=2,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    with pytest.raises(ValueError, match="needs the aelab.weight_averaging.EMAWeights callback"):
        trainer.fit(model, dm)
    with pytest.raises(ValueError, match="pseudo_labels must be one of"):
        SemiSupervisedVAE(pseudo_labels="teacher")


def test_ema_pseudo_labels_train(fake_data_dir, tmp_path):
    """A short fit with EMA pseudo-labels runs and logs the pseudo-label rate."""
    dm = Fashion5DataModule(**fashion5_kwargs(fake_data_dir, labeled_batch_size=8))
    model = SemiSupervisedVAE(num_classes=5, channels=4, latent_dim=4, hidden_dim=16, lr=1e-2, consistency=1.0,
                              pseudo_threshold=0.0, pseudo_labels="ema")
    trainer = pl.Trainer(default_root_dir=tmp_path, logger=False, max_epochs=1, limit_train_batches=3,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                         callbacks=[EMAWeights(decay=0.5)])
    trainer.fit(model, dm)
    assert trainer.callback_metrics["train_pseudo_rate"] == 1.0  # threshold 0: every unlabeled image
    assert torch.isfinite(trainer.callback_metrics["train_consistency"])
