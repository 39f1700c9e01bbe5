"""Tables: reading CSV / Parquet, checking features, the scaler module against scikit-learn, the tabular
anomaly datamodule (protocols, splits, no leak into the scaler, saved state), and a short
``aelab fit`` + ``aelab evaluate`` run on a tiny CSV. A real-data test reads the credit-card fraud file
when it is there."""

from __future__ import annotations

import csv
import gzip
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from aelab.data import DataError, TabularDataModule
from aelab.data.sources.table import (
    FeatureScaler,
    as_rows,
    feature_matrix,
    normal_ppf,
    read_columns,
    read_raw_rows,
    read_table,
    sklearn_scaler,
)

CREDITCARD = Path(__file__).resolve().parents[2] / "shared" / "data" / "creditcard" / "creditcard.csv.gz"
FEATURES = ["V1", "V2", "V3", "Amount", "Time"]


def make_table(n_normal: int = 300, n_anomalies: int = 30, seed: int = 0, anomaly_shift: float = 4.0,
               ties: bool = False) -> pd.DataFrame:
    """Normal rows ~ N(0, 1) in V1..V3, anomalies shifted by ``anomaly_shift``; ``Amount`` >= 0, ``Time``
    (shuffled, with repeated values if ``ties``), ``Class`` 0 / 1; rows in random order."""
    rng = np.random.default_rng(seed)
    n = n_normal + n_anomalies
    v = rng.normal(size=(n, 3))
    v[n_normal:] += anomaly_shift
    df = pd.DataFrame(v, columns=["V1", "V2", "V3"])
    df["Amount"] = np.round(rng.exponential(40.0, n), 2)
    df["Time"] = rng.integers(0, n // 3, n) if ties else rng.permutation(n)
    df["Class"] = [0] * n_normal + [1] * n_anomalies
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def write_csv(df: pd.DataFrame, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, **kw)
    return path


@pytest.fixture
def table_csv(tmp_path) -> Path:
    return write_csv(make_table(), tmp_path / "t.csv")


def names_of(dataset) -> set[int]:
    return {int(n) for n in dataset.names}


# -- reading -----------------------------------------------------------------------------------------
def test_read_table_csv_gzip_and_parquet_agree(tmp_path):
    df = make_table(40, 5)
    csv_path = write_csv(df, tmp_path / "t.csv")
    gz_path = write_csv(df, tmp_path / "t.csv.gz")  # compression inferred from the name
    with gzip.open(gz_path) as f:
        assert f.read(4) == b"V1,V"
    pq_path = tmp_path / "t.parquet"
    df.to_parquet(pq_path)
    for path in (csv_path, gz_path, pq_path):
        got = read_table(path)
        assert list(got.columns) == list(df.columns) and len(got) == 45
        np.testing.assert_allclose(got[FEATURES].to_numpy(), df[FEATURES].to_numpy(), rtol=1e-12)
        assert read_columns(path) == list(df.columns)
        assert list(read_table(path, ["Time", "V1"]).columns) == ["Time", "V1"]
    # the datamodule reads all three the same way
    outs = []
    for path in (csv_path, gz_path, pq_path):
        dm = TabularDataModule(str(path), label_column="Class", val_size=0.2)
        assert dm.input_shape == (5,)
        dm.setup("fit")
        outs.append(dm.test_set.inputs)
    assert torch.equal(outs[0], outs[1]) and torch.allclose(outs[0], outs[2], atol=1e-6)


def test_read_table_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="missing.csv: table file not found"):
        read_table(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(DataError, match="empty.csv: the table is empty"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="header.csv: the table has no data rows"):
        read_table(tmp_path / "header.csv")
    (tmp_path / "t.xlsx").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"t.xlsx: unknown table format"):
        read_table(tmp_path / "t.xlsx")
    (tmp_path / "bad.csv.gz").write_bytes(b"this is not gzip data at all")
    with pytest.raises(DataError, match="bad.csv.gz: cannot read table"):
        read_table(tmp_path / "bad.csv.gz")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 garbage garbage")
    with pytest.raises(DataError, match="bad.parquet: cannot read table"):
        read_table(tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="empty.csv"):
        TabularDataModule(str(tmp_path / "empty.csv")).input_shape


def test_missing_columns_error_names_them_and_the_available_ones(tmp_path, table_csv):
    with pytest.raises(DataError, match=r"t.csv: missing columns \['V9'\]; available: \['V1', 'V2'"):
        read_table(table_csv, ["V1", "V9"])
    dm = TabularDataModule(str(table_csv), label_column="Class", feature_columns=["V1", "V9"])
    with pytest.raises(DataError, match=r"missing columns \['V9'\]"):
        dm.input_shape
    with pytest.raises(DataError, match=r"missing columns \['Label'\]"):
        TabularDataModule(str(table_csv), label_column="Label").setup("fit")
    # new rows without a feature column
    dm = TabularDataModule(str(table_csv), label_column="Class")
    dm.setup("fit")
    write_csv(make_table(10, 0).drop(columns=["V2"]), tmp_path / "new.csv")
    with pytest.raises(DataError, match=r"new.csv: missing feature columns \['V2'\]; available"):
        dm.read_inputs(tmp_path / "new.csv")


def test_non_numeric_feature_names_column_row_and_value(tmp_path):
    df = make_table(40, 5)
    df["V2"] = df["V2"].astype(object)
    df.loc[7, "V2"] = "n/a?"
    df.loc[20, "V2"] = "x"
    path = write_csv(df, tmp_path / "t.csv")
    dm = TabularDataModule(str(path), label_column="Class", feature_columns=["V1", "V2"])
    with pytest.raises(DataError, match=r"t.csv: column 'V2' is not numeric: row 7 holds 'n/a\?' \(2 non"):
        dm.setup("fit")
    # by default a column that is not numeric (in the first rows) is no feature, and that is printed
    df["Kind"] = "card"
    path = write_csv(df.drop(columns=["V2"]), tmp_path / "k.csv")
    assert TabularDataModule(str(path), label_column="Class").feature_columns == ["V1", "V3", "Amount", "Time"]


def test_nan_raise_drop_fill(tmp_path, capsys):
    df = make_table(60, 6)
    df.loc[5, "V1"] = np.nan
    df.loc[9, "Amount"] = np.inf
    path = write_csv(df, tmp_path / "t.csv")
    with pytest.raises(DataError, match=r"t.csv: column 'V1' has a missing or infinite value \(nan\) at row 5 "
                                        r"\(2 row\(s\) in all\)"):
        TabularDataModule(str(path), label_column="Class").setup("fit")

    dm = TabularDataModule(str(path), label_column="Class", on_nan="drop", protocol="unsupervised")
    dm.setup("fit")
    assert "t.csv: dropped 2 of 66 rows with missing or infinite values (first: row 5, column 'V1')" \
        in capsys.readouterr().out
    seen = names_of(dm.train_set) | names_of(dm.val_set) | names_of(dm.test_set)
    assert seen == set(range(66)) - {5, 9}

    dm = TabularDataModule(str(path), label_column="Class", on_nan="fill", test_size=0.25)
    dm.setup("fit")
    scaler = dm.preprocessor()
    train_rows = sorted(names_of(dm.train_set))
    raw = df.loc[train_rows, ["V1", "V2", "V3", "Amount", "Time"]].to_numpy(np.float32).astype(np.float64)
    raw[~np.isfinite(raw)] = np.nan
    np.testing.assert_allclose(scaler.fill.numpy(), np.nanmedian(raw, axis=0))  # medians of the training rows
    everything = {**{int(n): x for n, x in zip(dm.train_set.names, dm.train_set.inputs)},
                  **{int(n): x for n, x in zip(dm.val_set.names, dm.val_set.inputs)},
                  **{int(n): x for n, x in zip(dm.test_set.names, dm.test_set.inputs)}}
    assert 5 in everything and bool(torch.isfinite(everything[5]).all())
    filled = scaler(torch.from_numpy(scaler.fill.numpy().astype(np.float32))[None])[0]
    assert torch.allclose(everything[5][0], filled[0]) and torch.allclose(everything[9][3], filled[3])
    # the same filling for new rows, and rows in memory are never dropped
    new = dm.prepare_rows(df.loc[[5, 9]])
    assert torch.allclose(new[0], everything[5]) and torch.allclose(new[1], everything[9])
    with pytest.raises(DataError, match=r"rows: column 'V1' has a missing or infinite value \(nan\) at row 0"):
        TabularDataModule(str(path), label_column="Class", on_nan="drop").as_raw(df.loc[[5]].to_numpy()[:, :5])


def test_transforms_log1p_and_their_errors(tmp_path):
    df = make_table(40, 5)
    path = write_csv(df, tmp_path / "t.csv")
    with pytest.raises(ValueError, match="unknown transform 'log2'"):
        TabularDataModule(str(path), transforms={"Amount": "log2"})
    with pytest.raises(ValueError, match=r"transforms name columns \['Nope'\]"):
        TabularDataModule(str(path), label_column="Class", transforms={"Nope": "log1p"}).input_shape
    dm = TabularDataModule(str(path), label_column="Class", transforms={"Amount": "log1p"}, scaler="none")
    dm.setup("fit")
    row = df.loc[int(dm.test_set.names[0]), FEATURES].to_numpy(np.float32)
    expected = row.astype(np.float64)
    expected[3] = np.log1p(expected[3])
    np.testing.assert_allclose(dm.test_set.inputs[0].numpy(), expected.astype(np.float32), rtol=1e-6)
    df.loc[3, "Amount"] = -2.5
    bad = write_csv(df, tmp_path / "bad.csv")
    with pytest.raises(DataError, match=r"bad.csv: column 'Amount' has the value -2.5 at row 3; its transform "
                                        r"'log1p' needs values > -1"):
        TabularDataModule(str(bad), label_column="Class", transforms={"Amount": "log1p"}).setup("fit")
    with pytest.raises(DataError, match=r"bad.csv: column 'Amount' has the value -2.5 at row 3"):
        dm.read_inputs(bad)
    signed = TabularDataModule(str(bad), label_column="Class", transforms={"Amount": "signed_log1p"}, scaler="none")
    x = signed.prepare_rows(df.loc[[3]])
    assert x[0, 3].item() == pytest.approx(-np.log1p(2.5), rel=1e-6)


# -- labels, batches, protocols --------------------------------------------------------------------------
def test_batches_shapes_and_semi_supervised_sets(table_csv):
    dm = TabularDataModule(str(table_csv), label_column="Class", batch_size=32)
    assert dm.input_shape == (5,) and isinstance(dm.input_shape, tuple) and dm.train_set is None
    assert dm.class_names == ("normal", "anomalous") and dm.num_classes == 2
    batch = next(iter(dm.train_dataloader()))
    assert batch["input"].shape == (32, 5) and batch["input"].dtype == torch.float32
    assert batch["label"].dtype == torch.int64 and batch["anomaly"].dtype == torch.int64
    assert batch["labeled"].dtype == torch.bool and bool(batch["labeled"].all())
    assert int(dm.train_set.extras["anomaly"].sum()) == 0 and int(dm.val_set.extras["anomaly"].sum()) == 0
    test = dm.test_set
    assert set(test.labels.tolist()) == {0, 1} and torch.equal(test.labels, test.extras["anomaly"])
    assert torch.equal(test.extras["anomaly_type"], 2 * test.extras["anomaly"])  # NOVEL ("novel_class")
    assert len(dm.normal_val_set) == len(dm.val_set) > 0
    # 300 normal, 30 anomalous; stratified 30 % test; 10 % of the normal training rows for validation
    assert len(test) == 90 + 9 and len(dm.val_set) == 21 and len(dm.train_set) == 210 - 21
    batch = next(iter(dm.test_dataloader()))
    assert set(batch) == {"input", "label", "anomaly", "anomaly_type", "labeled"}


def test_unsupervised_protocol_trains_on_every_training_row(table_csv):
    semi = TabularDataModule(str(table_csv), label_column="Class")
    unsup = TabularDataModule(str(table_csv), label_column="Class", protocol="unsupervised")
    semi.setup("fit")
    unsup.setup("fit")
    assert names_of(semi.test_set) == names_of(unsup.test_set)  # the same test rows in both protocols
    assert int(unsup.train_set.extras["anomaly"].sum()) > 0
    assert len(unsup.train_set) + len(unsup.val_set) + len(unsup.test_set) == 330
    assert int(unsup.normal_val_set.extras["anomaly"].sum()) == 0 < int(unsup.val_set.extras["anomaly"].sum())


def test_labels_quoted_strings_and_no_label_column(tmp_path):
    df = make_table(50, 10)
    df["Class"] = df["Class"].astype(str)
    quoted = write_csv(df, tmp_path / "q.csv", quoting=csv.QUOTE_NONNUMERIC)
    assert '"0"' in quoted.read_text().splitlines()[1] or '"1"' in quoted.read_text().splitlines()[1]
    for normal_label in (0, "0"):
        dm = TabularDataModule(str(quoted), label_column="Class", normal_label=normal_label)
        dm.setup("fit")
        assert int(dm.test_set.extras["anomaly"].sum()) == 3 and len(dm.test_set) == 18
    df["Class"] = np.where(df["Class"] == "0", "ok", "fraud")
    words = write_csv(df, tmp_path / "w.csv")
    dm = TabularDataModule(str(words), label_column="Class", normal_label="ok")
    dm.setup("fit")
    assert int(dm.test_set.extras["anomaly"].sum()) == 3
    with pytest.raises(DataError, match=r"no row of column 'Class' has the normal label 0 \(values seen"):
        TabularDataModule(str(words), label_column="Class").setup("fit")
    # no label column: every row normal as far as we know, labels -1, no anomaly column
    dm = TabularDataModule(str(words), feature_columns=["V1", "V2"])
    dm.setup("fit")
    assert dm.class_names == () and "anomaly" not in dm.test_set.extras
    assert bool((dm.train_set.labels == -1).all()) and not bool(dm.train_set.extras["labeled"].any())
    assert len(dm.train_set) + len(dm.val_set) + len(dm.test_set) == 60
    assert len(dm.normal_val_set) == len(dm.val_set)


# -- no leak into the scaler --------------------------------------------------------------------------------
def test_scaler_is_fitted_on_training_normal_rows_only(tmp_path):
    df = make_table(200, 20, anomaly_shift=1e6)  # anomalies with huge values: any leak moves mean and scale
    path = write_csv(df, tmp_path / "t.csv")
    dm = TabularDataModule(str(path), label_column="Class", val_size=0.2)
    dm.setup("fit")
    train = sorted(names_of(dm.train_set))
    assert (df.loc[train, "Class"] == 0).all()
    raw = df.loc[train, FEATURES].to_numpy(np.float32).astype(np.float64)
    scaler = dm.preprocessor()
    np.testing.assert_allclose(scaler.center.numpy(), raw.mean(0), rtol=1e-10)
    np.testing.assert_allclose(scaler.scale.numpy(), raw.std(0), rtol=1e-10)
    # hence the scaled training inputs are standardised exactly, and not the validation ones
    x = dm.train_set.inputs.double()
    assert x.mean(0).abs().max() < 1e-5 and (x.std(0, unbiased=False) - 1).abs().max() < 1e-5
    assert dm.test_set.inputs[dm.test_set.extras["anomaly"] == 1, :3].min() > 1e4
    # unsupervised: fitted on every training row, labels unused (so here the anomalies dominate)
    dm = TabularDataModule(str(path), label_column="Class", val_size=0.2, protocol="unsupervised")
    dm.setup("fit")
    train = sorted(names_of(dm.train_set))
    assert (df.loc[train, "Class"] == 1).any()
    raw = df.loc[train, FEATURES].to_numpy(np.float32).astype(np.float64)
    np.testing.assert_allclose(dm.preprocessor().center.numpy(), raw.mean(0), rtol=1e-10)


# -- splits -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", ["semi_supervised", "unsupervised"])
def test_ordered_split_tests_on_later_rows(tmp_path, protocol):
    df = make_table(300, 30, ties=True)  # Time has ~3 rows per value, in shuffled file order
    path = write_csv(df, tmp_path / "t.csv")
    dm = TabularDataModule(str(path), label_column="Class", split="ordered", order_column="Time",
                           protocol=protocol, val_size=0.2)
    dm.setup("fit")
    t = df["Time"]
    train, val, test = (t[sorted(names_of(s))] for s in (dm.train_set, dm.val_set, dm.test_set))
    assert max(train.max(), val.max()) < test.min()  # ties are never split across the cut
    assert train.max() < val.min()  # validation: the end of the training period
    assert len(test) == pytest.approx(0.3 * 330, abs=4) and len(test) + len(train) + len(val) <= 330
    assert (df.loc[sorted(names_of(dm.test_set)), "Time"] >= t.quantile(0.69)).all()
    with pytest.raises(ValueError, match="needs an order_column"):
        TabularDataModule(str(path), split="ordered")


def test_random_split_is_stratified_seeded_and_disjoint(table_csv):
    def parts(seed, protocol="unsupervised"):
        dm = TabularDataModule(str(table_csv), label_column="Class", seed=seed, protocol=protocol)
        dm.setup("fit")
        return dm, [names_of(s) for s in (dm.train_set, dm.val_set, dm.test_set)]

    dm, (train, val, test) = parts(1)
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val | test == set(range(330))
    assert int(dm.test_set.extras["anomaly"].sum()) == 9 and len(dm.test_set) == 99  # 30 % of each class
    assert int(dm.val_set.extras["anomaly"].sum()) == 2  # 10 % of the 21 remaining anomalies
    assert parts(1)[1] == [train, val, test]  # same seed, same rows
    assert parts(2)[1][2] != test  # another seed, other rows
    _, (semi_train, semi_val, semi_test) = parts(1, "semi_supervised")
    assert semi_test == test and not (semi_train & semi_val)


# -- the scaler module -------------------------------------------------------------------------------------
def test_normal_ppf_matches_scipy():
    from scipy import stats

    p = torch.from_numpy(np.concatenate([np.linspace(1e-7, 1 - 1e-7, 20001), [0.075, 0.925, 0.5 - 1e-12]]))
    np.testing.assert_allclose(normal_ppf(p).numpy(), stats.norm.ppf(p.numpy()), rtol=0, atol=1e-13)


@pytest.mark.parametrize("kind", ["standard", "robust", "quantile"])
def test_scaler_module_matches_sklearn(kind):
    rng = np.random.default_rng(3)
    n = 2000
    x = np.stack([rng.normal(size=n), rng.exponential(50.0, n), rng.integers(0, 4, n).astype(float),
                  rng.standard_t(2, n), np.full(n, 7.0)], 1).astype(np.float32)  # ties and a constant column
    columns = ["a", "Amount", "count", "heavy", "const"]
    module = FeatureScaler.fit(x[:1500], columns, {"Amount": "log1p"}, kind)
    fitted_on = module.prepare(torch.from_numpy(x[:1500])).numpy()
    sk = sklearn_scaler(kind, 1500).fit(fitted_on)
    new = x[1500:]
    transformed = module.prepare(torch.from_numpy(new)).numpy()
    expected = sk.transform(transformed)
    np.testing.assert_allclose(module(torch.from_numpy(new)).numpy(), expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(module.transform(new, chunk=64).numpy(), expected, rtol=0, atol=1e-5)
    if kind == "quantile":
        inside = (transformed > sk.quantiles_[0]) & (transformed < sk.quantiles_[-1])
        exact = module.quantile_normal(torch.from_numpy(transformed)).numpy()
        assert inside.mean() > 0.6  # the integer and the constant column sit on their extremes
        np.testing.assert_allclose(exact[inside], expected[inside], rtol=0, atol=1e-10)
        # the traceable two-level count and torch.searchsorted (eager, big arrays) agree with a plain count
        z = torch.from_numpy(np.concatenate([transformed, fitted_on[:300]]))
        for inclusive in (True, False):
            plain = (z.unsqueeze(-1) >= module._q_t if inclusive else z.unsqueeze(-1) > module._q_t).sum(-1)
            assert torch.equal(module.knots_below(z, inclusive), plain)
            assert torch.equal(module.knots_below(z, inclusive, search=True), plain)
        assert torch.equal(module(torch.from_numpy(new)), module.transform(new))
        # outside the fitted range: saturates at the normal quantile of 1e-7, like scikit-learn
        far = torch.tensor([[-1e3, 0.0, -5.0, -1e6, 6.0], [1e3, 1e9, 50.0, 1e6, 8.0]])
        out = module(far).numpy()
        np.testing.assert_allclose(out, sk.transform(module.prepare(far).numpy()), atol=1e-5)
        assert np.allclose(np.abs(out), 5.199337582, atol=1e-6)


def test_scaler_module_traces_into_onnx(tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import logging
    import warnings

    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(size=(300, 3))).astype(np.float32)
    module = FeatureScaler.fit(x, ["a", "b", "c"], {"b": "log1p", "c": "signed_log1p"}, "quantile",
                               fill_missing=True).eval()
    example = torch.from_numpy(x[:8])
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (example,), dynamo=True, input_names=["input"], output_names=["out"],
                                    dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    path = tmp_path / "scaler.onnx"
    onnx.save(program.model_proto, str(path))
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert not any("Search" in op or "Erf" in op for op in ops)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    new = np.concatenate([np.abs(rng.normal(size=(50, 3))), [[np.nan, 1.0, 2.0], [1e6, 0.5, -1.0]]]).astype(np.float32)
    got = session.run(None, {"input": new})[0]
    np.testing.assert_allclose(got, module(torch.from_numpy(new)).numpy(), rtol=0, atol=1e-5)
    traced = torch.jit.trace(module, (example,), check_trace=False)
    assert torch.allclose(traced(torch.from_numpy(new)), module(torch.from_numpy(new)))


# -- saved state, new rows ------------------------------------------------------------------------------------
def test_state_dict_round_trip_scales_new_rows_identically(tmp_path):
    df = make_table(120, 12)
    df.loc[4, "V3"] = np.nan
    path = write_csv(df, tmp_path / "t.csv")
    dm = TabularDataModule(str(path), label_column="Class", transforms={"Amount": "log1p"}, scaler="quantile",
                           on_nan="fill")
    assert dm.state_dict() == {}  # nothing fitted yet
    dm.setup("fit")
    torch.save(dm.state_dict(), tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    new = make_table(20, 5, seed=9)
    new.loc[2, "Amount"] = np.nan
    new_path = write_csv(new, tmp_path / "new.csv")
    # a fresh datamodule whose training file does not exist: the state alone scales new rows
    fresh = TabularDataModule(str(tmp_path / "gone.csv"), label_column="Class", on_nan="fill")
    fresh.load_state_dict(state)
    assert fresh.input_shape == (5,) and fresh.feature_columns == FEATURES
    a, b = dm.read_inputs(new_path), fresh.read_inputs(new_path)
    assert torch.equal(a.inputs, b.inputs) and a.names == b.names == [str(i) for i in range(25)]
    assert torch.equal(a.labels, b.labels) and int(b.extras["anomaly"].sum()) == 5
    assert bool(torch.isfinite(b.inputs).all())
    assert torch.equal(fresh.prepare_rows(new), a.inputs)
    assert torch.equal(fresh.prepare_rows(new[FEATURES].to_numpy()), a.inputs)
    raw, names = fresh.read_raw(new_path)
    assert torch.equal(fresh.preprocessor()(raw), a.inputs) and names == a.names
    spec = json.loads(json.dumps(fresh.input_spec()))  # JSON-able, and enough without a datamodule
    assert spec["kind"] == "rows" and spec["columns"] == FEATURES and spec["shape"] == [5]
    assert torch.equal(read_raw_rows(new_path, spec)[0].nan_to_num(-7), raw.nan_to_num(-7))
    # a state of other features is refused
    other = TabularDataModule(str(path), label_column="Class", feature_columns=["V1", "V2"])
    with pytest.raises(DataError, match="the saved preprocessing has the features"):
        other.load_state_dict(state)
    # loading into a set-up datamodule rebuilds its data sets with the loaded scaler
    again = TabularDataModule(str(path), label_column="Class", on_nan="fill", scaler="standard")
    again.setup("fit")
    again.load_state_dict(state)
    assert torch.equal(again.test_set.inputs, dm.test_set.inputs)


def test_prepare_rows_checks_width_and_columns(table_csv):
    dm = TabularDataModule(str(table_csv), label_column="Class")
    dm.setup("fit")
    df = pd.read_csv(table_csv)
    from_frame = dm.prepare_rows(df.iloc[:4])
    assert from_frame.shape == (4, 5) and from_frame.dtype == torch.float32
    assert torch.equal(dm.prepare_rows(df[FEATURES].to_numpy()[:4]), from_frame)
    assert torch.equal(dm.prepare_rows(df[FEATURES].to_numpy()[0]), from_frame[:1])
    with pytest.raises(DataError, match=r"rows must have 5 features in this order: \['V1', 'V2', 'V3', 'Amount', "
                                        r"'Time'\]; got shape \(4, 4\)"):
        dm.prepare_rows(df[FEATURES].to_numpy()[:4, :4])
    with pytest.raises(DataError, match=r"rows: missing columns \['Time'\]"):
        dm.prepare_rows(df.drop(columns=["Time"]))
    with pytest.raises(DataError, match="rows must have 5 features"):
        as_rows(np.zeros((2, 6)), dm.input_spec())
    x, rows = feature_matrix(df, ["V1"], "df")
    assert x.dtype == np.float32 and x.shape == (330, 1) and rows.tolist() == list(range(330))


def test_bad_arguments():
    with pytest.raises(ValueError, match="scaler must be one of"):
        TabularDataModule("t.csv", scaler="minmax")
    with pytest.raises(ValueError, match="protocol must be one of"):
        TabularDataModule("t.csv", protocol="supervised")
    with pytest.raises(ValueError, match="on_nan must be one of"):
        TabularDataModule("t.csv", on_nan="zero")
    with pytest.raises(ValueError, match="test_size"):
        TabularDataModule("t.csv", test_size=1.0)
    with pytest.raises(ValueError, match="label_column 'Class' cannot be a feature"):
        TabularDataModule("t.csv", label_column="Class", feature_columns=["Class", "V1"])


# -- end to end ---------------------------------------------------------------------------------------------------
def tiny_table_config(tmp_path: Path, data_path: Path) -> Path:
    config = {
        "seed_everything": 7,
        "trainer": {
            "max_epochs": 2, "accelerator": "cpu", "devices": 1, "enable_progress_bar": False,
            "enable_model_summary": False, "log_every_n_steps": 1,
            "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                       "init_args": {"save_dir": str(tmp_path / "logs"), "name": "tab", "default_hp_metric": False}},
            "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                           "init_args": {"monitor": "val_loss", "mode": "min", "save_last": True}}],
        },
        "model": {"class_path": "aelab.models.VAE",
                  "init_args": {"latent_dim": 2, "hidden_dims": [8, 4], "likelihood": "heteroscedastic"}},
        "data": {"class_path": "aelab.data.TabularDataModule",
                 "init_args": {"path": str(data_path), "label_column": "Class", "transforms": {"Amount": "log1p"},
                               "batch_size": 64}},
    }
    path = tmp_path / "tab.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def fitted_table_run(tmp_path_factory) -> tuple[Path, Path, str]:
    """``aelab fit`` of a tiny VAE on a tiny CSV: ``(config, last checkpoint, fit's printed output)``."""
    import contextlib
    import io

    from aelab.cli import main

    tmp = tmp_path_factory.mktemp("tabular_run")
    config = tiny_table_config(tmp, write_csv(make_table(), tmp / "t.csv"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["fit", "--config", str(config)])
    return config, tmp / "logs" / "tab" / "version_0" / "checkpoints" / "last.ckpt", out.getvalue()


def test_fit_then_evaluate_on_a_tiny_csv(tmp_path, fitted_table_run):
    from aelab.checkpoint import read_checkpoint
    from aelab.cli import main

    config, ckpt, printed = fitted_table_run
    assert "test_loss = " in printed
    state = torch.load(ckpt, weights_only=True)["TabularDataModule"]  # Lightning saved the fitted scaler
    assert state["feature_scaler"]["columns"] == FEATURES and state["feature_scaler"]["kind"] == "standard"
    out = tmp_path / "eval"
    main(["evaluate", "--config", str(config), "--ckpt_path", str(ckpt), "--output_dir", str(out)])
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"mse", "neg_elbo", "recon_prob", "recon_nll", "mahalanobis", "knn", "recon_mahalanobis"} <= set(
        metrics["scores"])
    assert not {"local_error", "transform"} & set(metrics["scores"])
    assert metrics["n_test"] == 99 and metrics["n_anomalies"] == 9 and metrics["datamodule"] == "TabularDataModule"
    # the anomalies are 4 standard deviations away in three features: every score finds them
    scores = ("mse", "neg_elbo", "recon_prob", "knn", "recon_mahalanobis")
    assert min(metrics["scores"][name]["auroc"] for name in scores) > 0.9
    assert "TabularDataModule" in read_checkpoint(out / "scored.ckpt")


def test_export_recon_mahalanobis_scores_rows_like_the_checkpoint(tmp_path, fitted_table_run, capsys):
    """The scaler, the network, the residual statistics and the threshold in one ONNX graph: ``aelab export``
    checks parity with the eager scorer on the test rows (an error otherwise); the file scores new rows."""
    import aelab
    from aelab.cli import main

    config, ckpt, _ = fitted_table_run
    out = tmp_path / "tab.onnx"
    main(["export", "--config", str(config), "--ckpt_path", str(ckpt), "--format", "onnx", "--output", str(out),
          "--score", "recon_mahalanobis"])
    assert "parity on" in capsys.readouterr().out
    table = make_table(seed=3)
    scores = aelab.Detector.load(out).score_samples(table[FEATURES])
    assert scores.shape == (len(table),) and np.isfinite(scores).all()
    anomalous = table["Class"].to_numpy() != 0  # 4 standard deviations off in three features
    assert np.median(scores[anomalous]) > np.quantile(scores[~anomalous], 0.9)


def test_latent_on_a_tiny_csv(tmp_path, fitted_table_run):
    from aelab.cli import main

    config, ckpt, _ = fitted_table_run
    main(["latent", "--config", str(config), "--ckpt_path", str(ckpt), "--output_dir", str(tmp_path / "latent"),
          "--max_points", "60", "--perplexity", "5", "--tsne_iterations", "250"])
    report = json.loads((tmp_path / "latent" / "latent.json").read_text())
    assert report["probe_accuracy"] is None  # every training row is normal: one class, no probe
    assert report["sampler"] is None and report["n_points"] == 99
    # rows have no image figures; the scatter plots are there
    assert {p.stem for p in (tmp_path / "latent").glob("*.png")} == {
        "pca", "pca_explained_variance", "tsne", "tsne_kmeans", "tsne_ekm"}


@pytest.mark.skipif(not CREDITCARD.exists(),
                    reason=f"credit-card fraud data not at {CREDITCARD} (see ../shared/DATA.md)")
def test_creditcard_real_data_loads():
    start = time.perf_counter()
    dm = TabularDataModule(str(CREDITCARD), label_column="Class", transforms={"Amount": "log1p"})
    assert dm.input_shape == (30,)  # Time, V1..V28, Amount
    assert dm.feature_columns[0] == "Time" and dm.feature_columns[-1] == "Amount"
    dm.setup("fit")
    test, train, val = dm.test_set, dm.train_set, dm.val_set
    n_fraud_test = int(test.extras["anomaly"].sum())
    assert n_fraud_test == round(0.3 * 492) and len(test) == round(0.3 * 284315) + n_fraud_test
    assert int(train.extras["anomaly"].sum()) == 0 and int(val.extras["anomaly"].sum()) == 0
    assert len(train) + len(val) == 284315 - round(0.3 * 284315)
    x = train.inputs.double()
    assert x.mean(0).abs().max() < 1e-4 and (x.std(0) - 1).abs().max() < 1e-3
    assert train.inputs.dtype == torch.float32 and bool(torch.isfinite(test.inputs).all())
    assert time.perf_counter() - start < 60
