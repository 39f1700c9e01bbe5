import pytest
import torch

from aelab.evaluation import anomaly_metrics, confusion, f1_threshold, sweep_table, youden_threshold
from aelab.scoring.thresholds import percentile_threshold, rule_percentile

# hand-made case: 6 normal, 4 anomalous; scores in nats (large, to catch torchmetrics' sigmoid)
SCORES = torch.tensor([300.0, 301.0, 302.0, 303.0, 304.0, 308.0, 305.0, 306.0, 307.0, 309.0])
LABELS = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])


def test_auroc_auprc_hand_computed():
    m = anomaly_metrics(SCORES, LABELS)
    # pairs (anomaly > normal): 305,306,307 beat 5 normals each, 309 beats all 6 -> 21 of 24
    assert m["auroc"] == pytest.approx(21 / 24)
    # ranked: 309(A) 308(N) 307(A) 306(A) 305(A): AP = (1/1 + 2/3 + 3/4 + 4/5) / 4
    assert m["auprc"] == pytest.approx((1 + 2 / 3 + 3 / 4 + 4 / 5) / 4)


def test_confusion_hand_computed():
    c = confusion(SCORES, LABELS, 305.0)
    assert (c["tp"], c["fp"], c["tn"], c["fn"]) == (4, 1, 5, 0)
    assert c["precision"] == pytest.approx(0.8) and c["recall"] == 1.0
    assert c["f1"] == pytest.approx(2 * 0.8 / 1.8) and c["accuracy"] == pytest.approx(0.9)


def test_youden_and_f1_thresholds():
    # threshold 305 gives TPR 1, FPR 1/6 (J = 0.833), the best possible here
    assert youden_threshold(SCORES, LABELS) == pytest.approx(305.0)
    assert f1_threshold(SCORES, LABELS) == pytest.approx(305.0)


def test_percentile_threshold():
    assert percentile_threshold(torch.arange(101.0), 95) == pytest.approx(95.0)
    # linear interpolation between order statistics: 10 scores, q = 99 -> 8 + 0.91 * (9 - 8)
    assert percentile_threshold(torch.arange(10.0), 99) == pytest.approx(8.91)
    with pytest.raises(ValueError, match="0 <= q <= 100"):
        percentile_threshold(torch.arange(5.0), 120)
    with pytest.raises(ValueError, match="NaN"):
        percentile_threshold(torch.tensor([1.0, float("nan")]), 50)


def test_threshold_rules_by_hand():
    assert rule_percentile("percentile", 99) == 99.0
    assert rule_percentile("fpr", 0.05) == pytest.approx(95.0)  # a 5 % false-positive rate on normal data
    assert rule_percentile("contamination", 0.1) == pytest.approx(90.0)  # PyOD: 10 % expected outliers
    for rule, value in (("percentile", 101), ("fpr", 1.0), ("contamination", -0.1)):
        with pytest.raises(ValueError, match=rule):
            rule_percentile(rule, value)
    with pytest.raises(ValueError, match="one of"):
        rule_percentile("youden", 0.5)


def test_normal_only_validation_gives_a_sensible_threshold():
    """With validation data that holds no anomaly, a label-free rule still flags about the stated share
    of normal items and most anomalies; a best-F1 threshold cannot even be chosen there (anomalib's
    F1AdaptiveThreshold then flags everything, its issues #2433 and #3357)."""
    g = torch.Generator().manual_seed(0)
    val_normal = torch.randn(1000, generator=g)
    test_normal, test_anomalous = torch.randn(1000, generator=g), torch.randn(100, generator=g) + 4.0
    t = percentile_threshold(val_normal, rule_percentile("fpr", 0.05))
    assert 1.5 < t < 1.8  # the 95th percentile of a standard normal is 1.645
    fpr = float((test_normal >= t).float().mean())
    recall = float((test_anomalous >= t).float().mean())
    assert 0.03 < fpr < 0.07 and recall > 0.9
    with pytest.raises(ValueError, match="need normal and anomalous"):
        anomaly_metrics(val_normal, torch.zeros(1000))


def test_sweep_table_and_single_class_error():
    rows = sweep_table(SCORES, LABELS, torch.tensor([300.0, 305.0, 310.0]))
    assert [r["tp"] for r in rows] == [4, 4, 0] and [r["fp"] for r in rows] == [6, 1, 0]
    with pytest.raises(ValueError, match="need normal and anomalous"):
        anomaly_metrics(SCORES, torch.zeros(10))
