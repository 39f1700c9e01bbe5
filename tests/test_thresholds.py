import pytest
import torch

from aelab.evaluation import (
    anomaly_metrics,
    confusion,
    f1_threshold,
    percentile_threshold,
    sweep_table,
    youden_threshold,
)

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
    with pytest.raises(ValueError, match="0 <= q <= 100"):
        percentile_threshold(torch.arange(5.0), 120)


def test_sweep_table_and_single_class_error():
    rows = sweep_table(SCORES, LABELS, torch.tensor([300.0, 305.0, 310.0]))
    assert [r["tp"] for r in rows] == [4, 4, 0] and [r["fp"] for r in rows] == [6, 1, 0]
    with pytest.raises(ValueError, match="need normal and anomalous"):
        anomaly_metrics(SCORES, torch.zeros(10))
