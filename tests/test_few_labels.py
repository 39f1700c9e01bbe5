"""Semi-supervised VAE, encoder classifier and the few-label data options (tiny, synthetic data)."""

import math

import kornia.augmentation as K
import lightning.pytorch as pl
import pytest
import torch

from aelab.checkpoint import CheckpointError, PretrainedEncoder
from aelab.data import Fashion5DataModule, FashionMNISTDataModule
from aelab.evaluation.classes import anomaly_class_counts
from aelab.models import CAE, VAE, EncoderClassifier, SemiSupervisedVAE
from aelab.models.tta import shift_averaged_logits

from helpers import fashion5_kwargs



def trainer(tmp_path, **kw):
    kw.setdefault("max_epochs", 1)
    return pl.Trainer(default_root_dir=tmp_path, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, **kw)


def test_labels_per_class_is_exact_and_seeded(fake_data_dir):
    def labeled(seed):
        dm = FashionMNISTDataModule(str(fake_data_dir), download=False, verify=False, val_size=50,
                                    labels_per_class=3, seed=seed)
        dm.setup()
        return dm.labeled_train_set.labels, dm.train_set.extras["labeled"]

    labels, mask = labeled(0)
    assert torch.bincount(labels, minlength=10).tolist() == [3] * 10
    assert int(mask.sum()) == 30 and len(mask) == 350  # the rest stays in the training set, unlabeled
    assert torch.equal(mask, labeled(0)[1]) and not torch.equal(mask, labeled(1)[1])
    dm = FashionMNISTDataModule(str(fake_data_dir), download=False, verify=False, val_size=50, labels_per_class=1000)
    with pytest.raises(ValueError, match="labels_per_class=1000"):
        dm.setup()


def test_fashion5_labels_per_class(fake_data_dir):
    dm = Fashion5DataModule(**fashion5_kwargs(fake_data_dir, labels_per_class=2))
    dm.setup()
    assert torch.bincount(dm.labeled_train_set.labels, minlength=5).tolist() == [2] * 5
    assert len(dm.train_set) == 120 + 32  # images that lost their label are still training images


def test_classifier_head_shapes():
    model = EncoderClassifier(num_classes=7, channels=4, latent_dim=5, hidden_dim=16, head_hidden=[12, 8])
    assert model.classify(torch.rand(3, 1, 28, 28)).shape == (3, 7)
    assert [m.out_features for m in model.head if isinstance(m, torch.nn.Linear)] == [12, 8, 7]
    semi = SemiSupervisedVAE(num_classes=5, channels=4, latent_dim=10, hidden_dim=16)
    assert [m.out_features for m in semi.classifier if isinstance(m, torch.nn.Linear)] == [256, 64, 5]
    assert semi.classify(torch.rand(2, 1, 28, 28)).shape == (2, 5)


def test_label_smoothing_in_training_only():
    model = EncoderClassifier(num_classes=4, channels=4, latent_dim=5, hidden_dim=16, label_smoothing=0.2)
    batch = {"input": torch.rand(6, 1, 28, 28), "label": torch.tensor([0, 1, 2, 3, 0, 1])}
    model.eval()
    with torch.no_grad():
        logits = model.classify(batch["input"])
        plain = model.losses(batch)["loss"]
        model.train()
        model.head.eval()  # no dropout, so the logits stay the same
        smoothed = model.losses(batch)["loss"]
    logp = logits.log_softmax(-1)
    nll = -logp[torch.arange(6), batch["label"]]
    assert torch.allclose(plain, nll.mean())
    # target 1 - 0.2 + 0.2 / 4 on the true class, 0.2 / 4 elsewhere (Szegedy et al. 2016)
    assert torch.allclose(smoothed, (0.8 * nll - 0.2 / 4 * logp.sum(-1)).mean(), atol=1e-6)
    with pytest.raises(ValueError, match="label_smoothing"):
        EncoderClassifier(label_smoothing=1.0)


def save_ckpt(model, path):
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, path)
    return str(path)


@pytest.mark.parametrize("source", [CAE, VAE])
def test_encoder_from_checkpoint_and_freezing(source, fake_data_dir, tmp_path):
    ae = source(channels=4, latent_dim=6, hidden_dim=16)
    ckpt = save_ckpt(ae, tmp_path / "ae.ckpt")
    model = EncoderClassifier(num_classes=10, encoder=PretrainedEncoder(ckpt), freeze_encoder=True)
    x = torch.rand(4, 1, 28, 28)
    assert torch.allclose(model.features(x), ae.encode(x), atol=1e-6)  # CAE code / VAE posterior mean
    assert model.hparams.latent_dim == 6 and model.hparams.channels == 4
    # the classifier's own checkpoint stands alone: it re-creates the model without the CAE/VAE file
    clone = EncoderClassifier(**dict(model.hparams))
    clone.load_state_dict(model.state_dict())
    assert torch.allclose(clone.classify(x), model.classify(x))
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    head_before = [p.clone() for p in model.head.parameters()]
    dm = FashionMNISTDataModule(str(fake_data_dir), download=False, verify=False, val_size=50, batch_size=32)
    trainer(tmp_path, limit_train_batches=3, limit_val_batches=1).fit(model, dm)
    assert all(torch.equal(before[k], v) for k, v in model.encoder.state_dict().items())
    assert any(not torch.equal(a, b) for a, b in zip(head_before, model.head.parameters()))


def test_finetune_uses_smaller_encoder_lr(tmp_path):
    save_ckpt(CAE(channels=4, latent_dim=6, hidden_dim=16), tmp_path / "ae.ckpt")
    model = EncoderClassifier(num_classes=10, encoder=PretrainedEncoder(str(tmp_path / "*.ckpt")), lr=1e-3)
    assert model.pretrained and model.hparams.pretrained_encoder  # the glob resolved to the file
    assert [g["lr"] for g in model.parameter_groups()] == [1e-3, 1e-4]
    with pytest.raises(CheckpointError, match="no checkpoint matches"):
        PretrainedEncoder(str(tmp_path / "missing-*.ckpt"))


def test_semisupervised_loss_uses_labeled_batches(fake_data_dir, tmp_path):
    """The classifier only learns from the labeled loader: if labeled batches were ignored, its
    weights (trained by the cross-entropy alone) would not move."""
    dm = Fashion5DataModule(**fashion5_kwargs(fake_data_dir, labeled_batch_size=8))
    batch = next(iter(dm.train_dataloader()))
    assert set(batch[0] if isinstance(batch, tuple) else batch) == {"unlabeled", "labeled"}
    model = SemiSupervisedVAE(num_classes=5, channels=4, latent_dim=4, hidden_dim=16, lr=1e-2)
    before = [p.clone() for p in model.classifier.parameters()]
    seen = []
    original = model.losses
    model.losses = lambda b: seen.append(sorted(b)) or original(b)
    trainer(tmp_path, limit_train_batches=3, limit_val_batches=1).fit(model, dm)
    assert ["labeled", "unlabeled"] in seen
    assert any(not torch.equal(a, b) for a, b in zip(before, model.classifier.parameters()))
    # with alpha = 0 the cross-entropy is off and the classifier gets no gradient at all
    model0 = SemiSupervisedVAE(num_classes=5, channels=4, latent_dim=4, hidden_dim=16, alpha=0.0)
    before0 = [p.clone() for p in model0.classifier.parameters()]
    trainer(tmp_path, limit_train_batches=2, limit_val_batches=1).fit(model0, dm)
    assert all(torch.equal(a, b) for a, b in zip(before0, model0.classifier.parameters()))


def test_anomaly_class_counts_sum_to_anomalies():
    predicted = torch.tensor([0, 1, 1, 4, 3, 3, 3, 2]).numpy()
    anomaly = torch.tensor([1, 1, 0, 1, 1, 1, 0, 1]).numpy()
    counts = anomaly_class_counts(predicted, anomaly, ["a", "b", "c", "d", "e"])
    assert counts == {"a": 1, "b": 1, "c": 1, "d": 2, "e": 1}
    assert sum(counts.values()) == int(anomaly.sum())


def test_consistency_term_uses_unlabeled_images(fake_data_dir, tmp_path):
    """With ``consistency > 0`` (FixMatch pseudo-labels) the unlabeled images add a classifier loss:
    at threshold 0 every unlabeled image gets a pseudo-label, at threshold 1 (unreachable for a
    softmax over 5 classes at init) none does, and the term is then exactly zero."""
    dm = Fashion5DataModule(**fashion5_kwargs(fake_data_dir, labeled_batch_size=8))
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    batch = batch[0] if isinstance(batch, tuple) else batch
    for threshold, rate in ((0.0, 1.0), (1.0, 0.0)):
        torch.manual_seed(0)
        model = SemiSupervisedVAE(num_classes=5, channels=4, latent_dim=4, hidden_dim=16, consistency=1.0,
                                  pseudo_threshold=threshold).train()
        out = model.losses(batch)
        assert out["pseudo_rate"].item() == rate
        assert (out["consistency"].item() > 0) == (rate > 0)
    with pytest.raises(ValueError, match="pseudo_threshold"):
        SemiSupervisedVAE(num_classes=5, channels=4, latent_dim=4, hidden_dim=16, pseudo_threshold=1.5)


def test_augment_flip_switches_flips_off():
    """``augment_flip=False`` removes the horizontal flip from both the labeled and the consistency
    augmentation (shifts and erasing stay); a flipped copy of an asymmetric image never comes out."""
    def flips(module):
        return [m for m in module.modules() if isinstance(m, K.RandomHorizontalFlip)]

    kw = dict(num_classes=5, channels=4, latent_dim=4, hidden_dim=16, augment=True, consistency=1.0)
    on, off = SemiSupervisedVAE(**kw), SemiSupervisedVAE(augment_flip=False, **kw)
    assert len(flips(on.augment)) == len(flips(on.consistency_augment)) == 1
    assert flips(off.augment) == flips(off.consistency_augment) == []
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 28, 28)
    x[..., 3:25, 2:6] = 1.0  # a bar near the left edge, too tall for one erased patch (<= 15 % of 784 px)
    for aug in (off.augment, off.consistency_augment):
        out = aug(x)  # a flip moves the bar 16+ pixels to the right, a 10 % shift <= 3 pixels
        assert (out[..., 14:].sum((1, 2, 3)) < out[..., :14].sum((1, 2, 3))).all()


def test_augment_erase_sets_the_erasing_probability():
    """``augment_erase`` is the random-erasing probability of both augmentations; 0 removes erasing,
    so no pixel of a white image turns black (a sub-pixel shift interpolates, and moves the zero fill in
    at the border only)."""
    def erasers(module):
        return [m for m in module.modules() if isinstance(m, K.RandomErasing)]

    kw = dict(num_classes=5, channels=4, latent_dim=4, hidden_dim=16, augment=True, consistency=1.0)
    on, off = SemiSupervisedVAE(augment_erase=1.0, **kw), SemiSupervisedVAE(augment_erase=0.0, **kw)
    assert [e.p for e in erasers(on.augment) + erasers(on.consistency_augment)] == [1.0, 1.0]
    assert erasers(off.augment) == erasers(off.consistency_augment) == []
    torch.manual_seed(0)
    x = torch.ones(32, 1, 28, 28)
    centre = (slice(None), slice(None), slice(4, 24), slice(4, 24))  # a 10 % shift moves the border <= 3 px
    assert (off.consistency_augment(x)[centre] > 0.99).all()
    assert ((on.consistency_augment(x)[centre] == 0).flatten(1).any(1)).float().mean() > 0.5
    with pytest.raises(ValueError, match="augment_erase"):
        SemiSupervisedVAE(augment_erase=1.5, **kw)


def test_transform_loss_on_paired_batches(fake_data_dir):
    """The transformation-prediction term (``transform_weight``) is added to the objective and sees the
    images of both parts of a paired batch."""
    dm = Fashion5DataModule(**fashion5_kwargs(fake_data_dir, labeled_batch_size=8))
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    batch = batch[0] if isinstance(batch, tuple) else batch
    torch.manual_seed(0)
    model = SemiSupervisedVAE(num_classes=5, channels=4, latent_dim=4, hidden_dim=16, transform_weight=2.0).train()
    seen = []
    original = model.transform_head.loss
    model.transform_head.loss = lambda enc, x: seen.append(len(x)) or original(enc, x)
    base = model.losses(batch)
    torch.manual_seed(0)
    out = model.auxiliary_losses(batch, dict(base))
    assert seen == [len(batch["unlabeled"]["input"]) + len(batch["labeled"]["input"])]
    assert torch.allclose(out["loss"], base["loss"] + 2.0 * out["transform_ce"])
    # an untrained head predicts about one transformation in 20: accuracy near chance, cross-entropy near log 20
    assert out["transform_acc"] < 0.3 and abs(float(out["transform_ce"]) - math.log(20)) < 0.5


def test_shift_averaged_prediction():
    """Test-time augmentation averages the class probabilities over the (2s+1)^2 shifted copies: a
    one-pixel image one column left of the midline is "left" in 2 of 3 column shifts."""
    x = torch.zeros(1, 1, 6, 6)
    x[0, 0, 3, 2] = 1.0  # columns 0-2 are the left half

    def left_or_right(images):  # (M, 1, 6, 6) -> near one-hot logits (M, 2)
        left = images[..., :3].sum((1, 2, 3))
        return 50.0 * torch.stack([left, images.sum((1, 2, 3)) - left], dim=1)

    probs = shift_averaged_logits(left_or_right, x, 1).exp()
    assert torch.allclose(probs, torch.tensor([[2 / 3, 1 / 3]]), atol=1e-6)
    assert torch.allclose(shift_averaged_logits(left_or_right, x, 0), left_or_right(x).log_softmax(-1))
    assert shift_averaged_logits(left_or_right, x[:0], 1).shape == (0, 2)  # a batch without labeled images
    with pytest.raises(ValueError, match="max_shift"):
        shift_averaged_logits(left_or_right, x, 6)

    torch.manual_seed(0)
    model = SemiSupervisedVAE(num_classes=5, channels=4, latent_dim=4, hidden_dim=16, tta_shift=1)
    images = torch.rand(3, 1, 28, 28)
    model.eval()
    assert torch.allclose(model.classify(images).exp().sum(-1), torch.ones(3))  # averaged probabilities
    assert not torch.allclose(model.classify(images), model.classifier(model.encode(images)).log_softmax(-1))
    model.train()
    model.classifier.eval()  # no dropout: training mode predicts from the clean image alone
    assert torch.allclose(model.classify(images), model.classifier(model.encode(images)))
    with pytest.raises(ValueError, match="tta_shift"):
        SemiSupervisedVAE(num_classes=5, tta_shift=-1)


@pytest.mark.parametrize("tta_validation", [True, False])
def test_tta_validation_switches_shifts_off_in_validation_only(fake_data_dir, tmp_path, tta_validation):
    """``tta_validation=False``: validation classifies the posterior means of the ELBO's single encoder
    pass (no 9 shifted copies of the labeled images), while test still averages over the shifts."""
    dm = Fashion5DataModule(**fashion5_kwargs(fake_data_dir, labeled_batch_size=8))
    model = SemiSupervisedVAE(num_classes=5, channels=4, latent_dim=4, hidden_dim=16, tta_shift=1,
                              tta_validation=tta_validation)
    seen = []
    model.encoder.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    run = trainer(tmp_path, limit_val_batches=1, limit_test_batches=1, num_sanity_val_steps=0)
    run.validate(model, dm)
    if tta_validation:  # the ELBO's pass over the whole batch, then the labeled images' 9 copies
        assert len(seen) == 2 and seen[1] > 0 and seen[1] % 9 == 0
    else:
        assert len(seen) == 1
    seen.clear()
    run.test(model, dm)
    assert len(seen) == 2 and seen[1] > 0 and seen[1] % 9 == 0  # test keeps the shifts either way
    assert model.eval().active_tta_shift() == 1 and model.train().active_tta_shift() == 0
