"""Semi-supervised VAE: the convolutional VAE plus an MLP classifier on its latent code.

Objective per step (the joint loss of the published Fashion-5 design; cf. the "M1+classifier"
family of Kingma et al. 2014, "Semi-Supervised Learning with Deep Generative Models",
arXiv:1406.5298, where the encoder is shared by generation and classification):

    loss = mean over all images [recon + beta * KL] + alpha * mean over labeled images [CE(y, f(mu(x)))]

``f`` is an MLP on the posterior mean ``mu(x)`` (published: latent 10 -> 256 -> 64 -> 5, ReLU,
dropout). With a datamodule that yields paired batches (``labeled_batch_size``), every step uses an
unlabeled batch and a labeled batch (Lightning ``CombinedLoader``); with plain batches, the
cross-entropy uses the images marked ``"labeled"``.

Optional consistency term (``consistency > 0``; pseudo-labelling as in FixMatch, Sohn et al. 2020,
arXiv:2001.07685, Eq. 4): for each unlabeled image the classifier's prediction on the clean image
(no gradient) is a pseudo-label when its probability is at least ``pseudo_threshold``; the
classifier must predict it on an augmented copy:

    loss += alpha * consistency * mean over unlabeled images [1(max p >= tau) * CE(argmax p, f(mu(aug(x))))]

With ``pseudo_labels="ema"``, ``p`` comes from the exponential moving average of the weights kept by
:class:`aelab.training.ema.EMAWeights`, in eval mode (no dropout, averaged BatchNorm statistics):
the teacher of Mean Teacher (Tarvainen & Valpola 2017, arXiv:1703.01780), used as the source of
FixMatch's hard pseudo-labels.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from aelab.data.augment import augmentation
from aelab.models.base import CLASSIFY
from aelab.models.class_metrics import ClassificationMetricsMixin, known_class_mask
from aelab.models.tta import shift_averaged_logits
from aelab.models.vae import VAE
from aelab.nets import mlp
from aelab.training.ema import ema_teacher

PSEUDO_LABEL_SOURCES = ("student", "ema")


class SemiSupervisedVAE(ClassificationMetricsMixin, VAE):
    """VAE + MLP classifier trained jointly on unlabeled and labeled images.

    Args:
        num_classes: classes of the classifier head (5 for Fashion-5, 10 for Fashion-MNIST).
        classifier_hidden: hidden layer sizes of the MLP (published: ``[256, 64]``).
        dropout: dropout after each hidden ReLU of the MLP.
        alpha: weight of the cross-entropy term (nats per labeled image, like the ELBO terms).
        augment: the cross-entropy of labeled training images is computed on kornia-augmented
            copies (random shifts, flips, erasing; see :func:`aelab.models.classifier.augmentation`);
            the ELBO always sees the clean images.
        augment_flip: include random horizontal flips in that augmentation and in the consistency
            term's (False: shifts and erasing only).
        augment_erase: probability of random erasing (Zhong et al. 2020) in both augmentations (0 = off:
            shifts and flips only, FixMatch's weak augmentation).
        consistency: weight of the pseudo-label consistency term relative to the labeled
            cross-entropy (FixMatch's lambda_u; 0 = off, the published joint loss).
        pseudo_threshold: minimum classifier probability for a pseudo-label (FixMatch's tau).
        pseudo_labels: which weights predict the pseudo-labels: ``"student"`` (the model being trained,
            in training mode, as in FixMatch) or ``"ema"`` (the EMA weights in eval mode; needs the
            :class:`~aelab.training.ema.EMAWeights` callback).
        tta_shift: outside training, :meth:`classify` averages the class probabilities over all shifts
            of up to this many pixels (test-time augmentation, :mod:`aelab.models.shift_averaging`;
            0 = off; images only). Applies to validation, test and ``aelab evaluate`` (predicted classes, ``msp``).
        tta_validation: False: validation (and Lightning's sanity check) classifies the posterior means
            of the ELBO's encoder pass: no encoder pass over the ``(2 * tta_shift + 1)^2`` shifted copies
            of the labeled validation images, and ``val_acc`` is the accuracy without test-time shifts.
            Training is unchanged (validation draws no random numbers).
        kwargs: the VAE's arguments (input shape, network size, likelihood, beta, optimisation; see
            :class:`~aelab.models.vae.VAE`, whose defaults apply).

    Logged: the VAE's ``{stage}_elbo/recon/kl/mse``, ``{stage}_ce`` (cross-entropy on labeled images),
    ``{stage}_loss`` (the objective), ``{stage}_acc`` and ``{stage}_f1`` (macro); test confusion
    matrix. With ``consistency > 0`` also ``train_consistency`` (the term, nats per unlabeled image)
    and ``train_pseudo_rate`` (fraction of unlabeled images with a pseudo-label).
    """

    def __init__(
        self,
        num_classes: int = 5,
        classifier_hidden: list[int] = [256, 64],
        dropout: float = 0.2,
        alpha: float = 100.0,
        augment: bool = False,
        augment_flip: bool = True,
        augment_erase: float = 0.25,
        consistency: float = 0.0,
        pseudo_threshold: float = 0.95,
        pseudo_labels: str = "student",
        tta_shift: int = 0,
        tta_validation: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.alpha = alpha
        self.classifier = mlp([self.latent_dim, *classifier_hidden, num_classes], dropout=dropout)
        if consistency < 0 or not 0.0 <= pseudo_threshold <= 1.0:
            raise ValueError(f"consistency must be >= 0 and pseudo_threshold in [0, 1], got {consistency}, "
                             f"{pseudo_threshold}")
        self.consistency = consistency
        self.pseudo_threshold = pseudo_threshold
        if pseudo_labels not in PSEUDO_LABEL_SOURCES:
            raise ValueError(f"pseudo_labels must be one of {PSEUDO_LABEL_SOURCES}, got {pseudo_labels!r}")
        self.pseudo_labels = pseudo_labels
        if tta_shift < 0 or (tta_shift and not self.images):
            raise ValueError(f"tta_shift must be >= 0 pixels (and 0 for table rows), got {tta_shift}")
        self.tta_shift = tta_shift
        self.tta_validation = tta_validation
        if not 0.0 <= augment_erase <= 1.0:
            raise ValueError(f"augment_erase is a probability in [0, 1], got {augment_erase}")
        self.augment = augmentation(flip=augment_flip, erase=augment_erase) if augment else None
        self.consistency_augment = augmentation(flip=augment_flip, erase=augment_erase) if consistency > 0 else None
        self.init_classification_metrics(num_classes)

    @property
    def capabilities(self) -> frozenset[str]:
        return super().capabilities | {CLASSIFY}

    def active_tta_shift(self) -> int:
        """The test-time shift in pixels that :meth:`classify` uses now: 0 in training mode, and in
        validation when ``tta_validation`` is False; else ``tta_shift``."""
        if self.training:
            return 0
        if not self.tta_validation and self._trainer is not None and (
                self._trainer.validating or self._trainer.sanity_checking):
            return 0
        return self.tta_shift

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, num_classes)`` of images ``(N, C, H, W)``, from the posterior mean
        (with :meth:`active_tta_shift` > 0: log-probabilities averaged over shifted copies)."""
        tta = self.active_tta_shift()
        if tta:
            return shift_averaged_logits(lambda v: self.classifier(self.encode(v)), x, tta)
        return self.classifier(self.encode(x))

    def losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if "unlabeled" in batch:  # paired batches from a CombinedLoader
            unlabeled, labeled = batch["unlabeled"], batch["labeled"]
            x = torch.cat([unlabeled["input"], labeled["input"]])
            n_lab = labeled["input"].shape[0]
            mask = torch.zeros(len(x), dtype=torch.bool, device=x.device)
            mask[-n_lab:] = known_class_mask(labeled, only_labeled=True)
            y = torch.cat([unlabeled["label"], labeled["label"]])
        else:
            x, y = batch["input"], batch["label"]
            mask = known_class_mask(batch, only_labeled=self.labels_usable_now())
        t = self.elbo_terms(x)
        if self.training and self.augment is not None and mask.any():
            logits = self.classify(self.augment(x[mask]))
        elif self.active_tta_shift():
            logits = self.classify(x[mask])
        else:
            logits = self.classifier(t["mu"][mask])
        labels = y[mask]
        self.check_labels(labels)
        ce = F.cross_entropy(logits, labels) if labels.numel() else x.new_zeros(())
        out = self.vae_losses(x, t)
        out["loss"] = out["loss"] + self.alpha * ce
        out.update(ce=ce.detach(), _logits=logits, _labels=labels)
        if self.training and self.consistency > 0 and (~mask).any():
            term, rate = self.consistency_loss(x[~mask], t["mu"][~mask])
            out["loss"] = out["loss"] + self.alpha * self.consistency * term
            out.update(consistency=term.detach(), pseudo_rate=rate)
        return out

    def consistency_loss(self, x: torch.Tensor, mu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """FixMatch pseudo-label term (Sohn et al. 2020, Eq. 4) for unlabeled images ``(N, C, H, W)``
        with posterior means ``mu`` ``(N, latent_dim)``: returns the mean masked cross-entropy
        (nats per unlabeled image) and the fraction of images whose pseudo-label is kept."""
        confidence, pseudo = self.pseudo_label_probs(x, mu).max(-1)  # no gradient (see its decorator)
        keep = (confidence >= self.pseudo_threshold).float()
        ce = F.cross_entropy(self.classify(self.consistency_augment(x)), pseudo, reduction="none")
        return (ce * keep).mean(), keep.mean()

    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self.consistency > 0 and self.pseudo_labels == "ema" and ema_teacher(self._trainer) is None:
            raise ValueError("pseudo_labels='ema' needs the aelab.weight_averaging.EMAWeights callback in "
                             "trainer.callbacks (it keeps the averaged weights); add it or use pseudo_labels='student'")

    @torch.no_grad()
    def pseudo_label_probs(self, x: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(N, num_classes)`` that give the pseudo-labels of unlabeled images
        ``(N, C, H, W)``: the classifier on their posterior means ``mu`` ``(N, latent_dim)``, or the EMA
        teacher on the images (``pseudo_labels="ema"``).

        Raises:
            RuntimeError: ``pseudo_labels="ema"`` and no :class:`~aelab.weight_averaging.EMAWeights`
                callback with averaged weights is attached (``fit`` checks this at the start).
        """
        if self.pseudo_labels == "student":
            return self.classifier(mu).softmax(-1)
        teacher = ema_teacher(self._trainer)
        if teacher is None:
            raise RuntimeError("pseudo_labels='ema': no EMAWeights callback with averaged weights is attached")
        was_training = teacher.training
        teacher.eval()
        try:
            return teacher.classifier(teacher.encode(x)).softmax(-1)
        finally:
            teacher.train(was_training)
