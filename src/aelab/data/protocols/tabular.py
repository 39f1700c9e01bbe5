"""Anomaly detection on a table (CSV / Parquet): :class:`TabularDataModule`.

One row is one item, its numeric columns the features, an optional label column says which rows are
normal. The credit-card fraud data (Dal Pozzolo, Caelen, Johnson & Bontempi 2015, "Calibrating
probability with undersampling for unbalanced classification", IEEE SSCI; ULB Machine Learning Group:
284,807 transactions, 492 frauds, columns ``Time``, ``V1``..``V28``, ``Amount``, ``Class``) is the
example this was built for::

    data:
      class_path: aelab.data.TabularDataModule
      init_args:
        path: ../shared/data/creditcard/creditcard.csv.gz
        label_column: Class
        transforms: {Amount: log1p}
        scaler: standard

Protocols:

* ``semi_supervised`` (the published study's, and the default): train and validate on normal rows
  only; the anomalous rows of the training part are left out (never trained on, never tested on), so
  the test set is the same as in ``unsupervised`` and the two protocols compare on the same rows.
* ``unsupervised``: train on every training row, normal or not (the labels are used only for
  evaluation and for the normal validation rows that set the threshold).

Without a label column every row counts as normal (label ``-1``, no ``anomaly`` column): both
protocols train on all training rows, and ``aelab evaluate`` (which needs anomaly labels) refuses.

Splits (seeded, reproducible):

* ``random``: ``test_size`` of the rows, stratified by normal / anomalous, go to the test set; of the
  rest (after the protocol's filtering) ``val_size``, stratified, to validation.
* ``ordered``: rows sorted by ``order_column`` (e.g. ``Time``; a stable sort, ties in file order); the
  last ``test_size`` are the test set, and the last ``val_size`` of the remaining training period the
  validation set: the model is always tested on later rows than it was trained on, what a deployed
  fraud detector faces. Cuts never split rows with equal order values (a tie goes to the later part),
  so every test row comes strictly after every training and validation row. A time-like order column
  that is also a feature lies outside its training range in the test set: consider ``drop_columns``.

The scaler and the transforms (:class:`aelab.data.sources.table.FeatureScaler`) are fitted on the
**training rows of the protocol only**: the normal training rows for ``semi_supervised``; every
training row for ``unsupervised`` (its labels are not used for training, and the scaler is part of
training). Validation and test rows never enter it. The whole table lives in memory as float32
tensors, scaled once; batches are drawn by index.

Batches: ``{"input": (B, D) float32 (scaled), "label": (B,) int64 (0 normal, 1 anomalous; -1 without a
label column), "labeled": (B,) bool}`` plus, with a label column, ``"anomaly"`` (B,) int64 (0/1) and
``"anomaly_type"`` (B,) int64 (0 normal, 2 = ``novel_class`` for every anomalous row: rows of another
class than the normal one, so :mod:`aelab.evaluation` reports them as one type). Every set's ``names``
are the rows' 0-based data row numbers in the file, as text (``predictions.csv``'s ``item``).

The fitted scaler is the datamodule's ``state_dict`` (Lightning stores it in every checkpoint under
``TabularDataModule``), so new rows are scaled exactly alike without the training file
(:meth:`TabularDataModule.load_state_dict`, then :meth:`TabularDataModule.read_inputs` /
:meth:`TabularDataModule.prepare_rows` for model inputs, or :meth:`TabularDataModule.read_raw` /
:meth:`TabularDataModule.as_raw` for raw rows and :meth:`TabularDataModule.preprocessor` for the module
that turns them into model inputs, the one ``aelab export`` puts in front of the network).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from aelab.data.datasets import InMemoryDataset
from aelab.data.errors import DataError
from aelab.data.protocols.anomaly import NORMAL, NOVEL
from aelab.data.protocols.base import InMemoryDataModule
from aelab.data.sources.table import (
    ON_NAN,
    SCALERS,
    FeatureScaler,
    as_rows,
    check_columns,
    check_transform_names,
    check_transforms,
    feature_matrix,
    numeric_column,
    numeric_columns,
    read_columns,
    read_raw_rows,
    read_table,
    rows_spec,
)
from aelab.data.splits import per_class_split

PROTOCOLS = ("semi_supervised", "unsupervised")
SPLITS = ("random", "ordered")
STATE_VERSION = 1


def anomaly_flags(values: pd.Series, normal_label: int | str, source: str | Path, column: str) -> np.ndarray:
    """``(N,)`` int64: 0 where the label equals ``normal_label``, 1 elsewhere.

    Numbers compare as numbers (``0``, ``"0"``, ``0.0`` and a quoted ``"0"`` in a CSV file are the same
    label); otherwise the labels compare as stripped text.

    Raises:
        DataError: a missing label (naming the row), or no row with the normal label (naming the values seen).
    """
    missing = values.isna().to_numpy()
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise DataError(f"{source}: label column {column!r} is empty at row {values.index[i]} "
                        f"({int(missing.sum())} row(s) in all)")
    target = None
    try:
        target = float(normal_label)
    except (TypeError, ValueError):
        pass
    numeric = pd.to_numeric(values, errors="coerce")
    if target is not None and not numeric.isna().any():
        normal = numeric.to_numpy(dtype=np.float64) == target
    else:
        normal = values.astype(str).str.strip().to_numpy() == str(normal_label).strip()
    return (~normal).astype(np.int64)


def _cut_after_ties(sorted_values: np.ndarray, cut: int) -> int:
    """Move ``cut`` forward so that no two equal values lie on both sides of it."""
    if cut <= 0 or cut >= len(sorted_values):
        return cut
    return int(np.searchsorted(sorted_values, sorted_values[cut - 1], side="right"))


class TabularDataModule(InMemoryDataModule):
    """Anomaly detection on a CSV / Parquet table (module docstring: protocols, splits, batches).

    Args:
        path: the table: ``.csv`` (also compressed, e.g. ``.csv.gz``) or ``.parquet`` / ``.pq``.
        label_column: the column that says which rows are normal (``None``: no labels).
        normal_label: the label value of normal rows; every other value is an anomaly (``0`` matches a
            quoted ``"0"`` in the file).
        feature_columns: the features, in this order (default: every numeric column except the label,
            ``drop_columns``; numeric by the Parquet schema, or for CSV by the first 1,000 rows; the
            non-numeric ones left out are printed).
        drop_columns: columns never used as features (e.g. an id, or ``Time``).
        transforms: per-column transform, ``{"Amount": "log1p"}``: ``identity``, ``log1p`` (values > -1)
            or ``signed_log1p``.
        scaler: ``standard`` (``sklearn.preprocessing.StandardScaler``), ``robust`` (``RobustScaler``),
            ``quantile`` (``QuantileTransformer(output_distribution="normal")``) or ``none``.
        protocol: ``semi_supervised`` (train and validate on normal rows) or ``unsupervised`` (train on
            all training rows).
        split: ``random`` (stratified, seeded) or ``ordered`` (by ``order_column``).
        order_column: the column to order by (e.g. ``Time``); required for ``ordered``.
        test_size: fraction of the rows in the test set, in (0, 1).
        val_size: fraction of the training part (after the protocol's filtering) for validation, in [0, 1).
        on_nan: missing or infinite feature values: ``raise`` (an error naming column and row),
            ``drop`` (those rows are left out, with the count printed) or ``fill`` (the column's median
            over the scaler's fitting rows, in raw units; also in :meth:`read_inputs` and the exported
            preprocessing).
        batch_size, seed, num_workers: see :class:`~aelab.data.protocols.base.InMemoryDataModule`.

    Raises:
        ValueError: unknown option values, sizes out of range, ``ordered`` without ``order_column``, a
            label column among the features or dropped.
        aelab.data.errors.DataError: (when the file is first read) a missing, unreadable or empty file,
            missing columns (naming them and the available ones), a non-numeric or missing value
            (naming column and row), no normal row, no training row.
    """

    def __init__(self, path: str, label_column: str | None = None, normal_label: int | str = 0,
                 feature_columns: list[str] | None = None, drop_columns: list[str] = [],
                 transforms: dict[str, str] = {}, scaler: str = "standard", protocol: str = "semi_supervised",
                 split: str = "random", order_column: str | None = None, test_size: float = 0.3,
                 val_size: float = 0.1, on_nan: str = "raise", batch_size: int = 256, seed: int = 42,
                 num_workers: int = 0,
                 device_resident: bool | str = "auto") -> None:
        super().__init__(batch_size=batch_size, seed=seed, num_workers=num_workers, device_resident=device_resident)
        for name, value, allowed in (("scaler", scaler, SCALERS), ("protocol", protocol, PROTOCOLS),
                                     ("split", split, SPLITS), ("on_nan", on_nan, ON_NAN)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if split == "ordered" and not order_column:
            raise ValueError("split='ordered' needs an order_column (e.g. 'Time')")
        if not 0 < test_size < 1 or not 0 <= val_size < 1:
            raise ValueError(f"need 0 < test_size < 1 and 0 <= val_size < 1, got {test_size}, {val_size}")
        check_transform_names(transforms)
        if label_column is not None and (label_column in (feature_columns or []) or label_column in drop_columns):
            raise ValueError(f"label_column {label_column!r} cannot be a feature or a dropped column")
        if feature_columns is not None and len(feature_columns) == 0:
            raise ValueError("feature_columns is empty")
        self.path = str(path)
        self.label_column = label_column
        self.normal_label = normal_label
        self.feature_columns_arg = list(feature_columns) if feature_columns is not None else None
        self.drop_columns = list(drop_columns)
        self.transforms = dict(transforms)
        self.scaler = scaler
        self.protocol = protocol
        self.split = split
        self.order_column = order_column
        self.test_size = test_size
        self.val_size = val_size
        self.on_nan = on_nan
        self._columns: list[str] | None = None
        self._scaler: FeatureScaler | None = None
        self._raw: torch.Tensor | None = None       # (N, D) float32 raw features of the kept rows
        self._parts: dict[str, np.ndarray] = {}     # positions into _raw of train / val / test
        self._rows: np.ndarray | None = None        # file row numbers of the kept rows
        self._anomaly: np.ndarray | None = None     # (N,) 0/1, or None without labels

    # -- what the model and the commands need to know -----------------------------------------------
    @property
    def feature_columns(self) -> list[str]:
        """The feature names in input order: those of a loaded state, the configured ones, or every
        numeric column except the label and the dropped ones (reads only the header / a sample).

        Raises:
            aelab.data.errors.DataError: missing columns, or no numeric column left.
        """
        if self._columns is None:
            if self.feature_columns_arg is not None:
                columns = list(self.feature_columns_arg)
                dropped = [c for c in columns if c in self.drop_columns]
                if dropped:
                    raise ValueError(f"columns {dropped} are both features and dropped")
                check_columns(self.path, columns + self.drop_columns, read_columns(self.path))
                check_transform_names(self.transforms, columns)
                self._columns = columns
            else:
                available = read_columns(self.path)
                check_columns(self.path, self.drop_columns, available, "drop_columns")
                numeric = set(numeric_columns(self.path))
                skip = set(self.drop_columns) | {self.label_column}
                columns = [c for c in available if c in numeric and c not in skip]
                ignored = [c for c in available if c not in numeric and c not in skip]
                if not columns:
                    raise DataError(f"{self.path}: no numeric feature column (columns: {available}, label "
                                    f"{self.label_column!r}, dropped {self.drop_columns})")
                check_transform_names(self.transforms, columns)
                if ignored:
                    print(f"TabularDataModule {self.path}: non-numeric columns left out of the features: {ignored}",
                          flush=True)
                self._columns = columns
        return self._columns

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(D,)``: the number of feature columns (known before ``setup``: reads the header only)."""
        return (len(self.feature_columns),)

    @property
    def class_names(self) -> tuple[str, ...]:  # type: ignore[override]
        """``("normal", "anomalous")`` (the names of labels 0 and 1) with a label column, else ``()``."""
        return ("normal", "anomalous") if self.label_column is not None else ()

    @property
    def anomaly_kind(self) -> str:
        """What the anomalies are (recorded in ``metrics.json``)."""
        return f"label {self.label_column} != {self.normal_label!r}" if self.label_column else "none"

    # -- reading and splitting --------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        columns = self.feature_columns
        extra = [c for c in (self.label_column, self.order_column) if c]
        df = read_table(self.path, columns + extra)
        x, rows = feature_matrix(df, columns, self.path, self.on_nan)
        check_transforms(x, rows, columns, self.input_spec()["transforms"], self.path)
        df = df.loc[rows]
        anomaly = None
        if self.label_column:
            anomaly = anomaly_flags(df[self.label_column], self.normal_label, self.path, self.label_column)
            if not (anomaly == 0).any():
                seen = pd.unique(df[self.label_column])[:10].tolist()
                raise DataError(f"{self.path}: no row of column {self.label_column!r} has the normal label "
                                f"{self.normal_label!r} (values seen: {seen})")
        order = None
        if self.split == "ordered":
            order = numeric_column(df, self.order_column, self.path)
            if np.isnan(order).any():
                i = int(np.flatnonzero(np.isnan(order))[0])
                raise DataError(f"{self.path}: order column {self.order_column!r} is empty at row {rows[i]}")
        train, val, test = self.split_rows(len(x), anomaly, order)
        if len(train) == 0:
            raise DataError(f"{self.path}: no training row left ({len(x)} rows, protocol {self.protocol}, "
                            f"test_size {self.test_size}, val_size {self.val_size})")
        if anomaly is not None and len(np.unique(anomaly[test])) < 2:
            print(f"TabularDataModule {self.path}: the test set has only "
                  f"{'anomalous' if anomaly[test].all() else 'normal'} rows", flush=True)
        self._raw = torch.from_numpy(x)
        self._rows, self._anomaly = rows, anomaly
        self._parts = {"train": train, "val": val, "test": test}
        if self._scaler is None:
            self._scaler = FeatureScaler.fit(x[train], columns, self.transforms, self.scaler,
                                             fill_missing=self.on_nan == "fill", seed=self.seed)
        self._build_sets()

    def split_rows(self, n: int, anomaly: np.ndarray | None,
                   order: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positions ``(train, val, test)`` (each sorted) of ``n`` rows, by the split and the protocol
        (module docstring); ``anomaly`` ``(n,)`` 0/1 or ``None``, ``order`` ``(n,)`` for ``ordered``."""
        flags = np.zeros(n, dtype=np.int64) if anomaly is None else anomaly
        if self.split == "random":
            rest, test = (t.numpy() for t in per_class_split(torch.from_numpy(flags), [self.test_size], self.seed))
            pool = rest if self.protocol == "unsupervised" else rest[flags[rest] == 0]
            keep, val = per_class_split(torch.from_numpy(flags[pool]), [self.val_size], self.seed + 1)
            return pool[keep.numpy()], pool[val.numpy()], test
        by_order = np.argsort(order, kind="stable")
        sorted_order = order[by_order]
        cut = _cut_after_ties(sorted_order, n - int(round(self.test_size * n)))
        part, test = by_order[:cut], by_order[cut:]
        pool = part if self.protocol == "unsupervised" else part[flags[part] == 0]
        vcut = _cut_after_ties(order[pool], len(pool) - int(round(self.val_size * len(pool))))
        return np.sort(pool[:vcut]), np.sort(pool[vcut:]), np.sort(test)

    def _dataset(self, positions: np.ndarray) -> InMemoryDataset:
        idx = torch.from_numpy(positions)
        inputs = self._scaler.transform(self._raw[idx])
        n = len(positions)
        if self._anomaly is None:
            return InMemoryDataset(inputs, torch.full((n,), -1, dtype=torch.long),
                                   {"labeled": torch.zeros(n, dtype=torch.bool)},
                                   names=[str(r) for r in self._rows[positions]])
        anomaly = torch.from_numpy(self._anomaly[positions])
        extras = {"anomaly": anomaly, "anomaly_type": torch.where(anomaly == 1, NOVEL, NORMAL),
                  "labeled": torch.ones(n, dtype=torch.bool)}
        return InMemoryDataset(inputs, anomaly.clone(), extras,
                               names=[str(r) for r in self._rows[positions]])

    def _build_sets(self) -> None:
        self.train_set = self._dataset(self._parts["train"])
        self.val_set = self._dataset(self._parts["val"])
        self.test_set = self._dataset(self._parts["test"])
        labeled = self.train_set.extras["labeled"]  # all rows with a label column, none without
        self.labeled_train_set = self.train_set if bool(labeled.all()) else None

    # -- the fitted preprocessing -----------------------------------------------------------------
    def preprocessor(self) -> nn.Module:
        """The fitted :class:`~aelab.data.sources.table.FeatureScaler`: raw feature rows float32 ``(N, D)``
        in :attr:`feature_columns` order -> model input float32 ``(N, D)`` (fill, transforms, scaling).
        Fits it (``setup``) unless it is fitted or was loaded by :meth:`load_state_dict`."""
        if self._scaler is None:
            self.setup("fit")
        return self._scaler

    def state_dict(self) -> dict:
        """The fitted preprocessing as plain lists, strings and tensors (``torch.load(weights_only=True)``
        reads it): ``{"version", "feature_scaler": {"columns", "transforms", "kind", "fill_missing",
        "buffers"}, "label_column", "normal_label"}``; ``{}`` before it is fitted."""
        if self._scaler is None:
            return {}
        return {"version": STATE_VERSION, "feature_scaler": self._scaler.to_state(),
                "label_column": self.label_column, "normal_label": str(self.normal_label)}

    def load_state_dict(self, state_dict: dict) -> None:
        """Take the fitted preprocessing of a :meth:`state_dict` (e.g. a checkpoint's): new rows are then
        scaled exactly as in training, without reading the training file. Data sets already built with
        another scaler are rebuilt.

        Raises:
            aelab.data.errors.DataError: an unknown state, feature columns other than the configured ones,
                or ``on_nan="fill"`` with a state fitted without fill values.
        """
        if not state_dict:
            return
        if state_dict.get("version") != STATE_VERSION or "feature_scaler" not in state_dict:
            raise DataError(f"not a TabularDataModule state (version {state_dict.get('version')!r}, "
                            f"keys {sorted(state_dict)})")
        scaler = FeatureScaler.from_state(state_dict["feature_scaler"])
        configured = self.feature_columns_arg if self._columns is None else self._columns
        if configured is not None and list(configured) != scaler.columns:
            raise DataError(f"the saved preprocessing has the features {scaler.columns}, this datamodule "
                            f"{list(configured)}")
        if self.on_nan == "fill" and not scaler.fill_missing:
            raise DataError("the saved preprocessing has no fill values (it was fitted with on_nan 'raise' or "
                            "'drop'); set on_nan to 'raise' or 'drop'")
        changed = self._scaler is None or not self._scaler.same_as(scaler)
        self._columns = list(scaler.columns)
        self._scaler = scaler
        if changed and self._raw is not None:
            self._build_sets()

    # -- new rows -------------------------------------------------------------------------------
    def input_spec(self) -> dict:
        """The raw inputs (JSON-able, :mod:`aelab.data.inputs`): ``{"kind": "rows", "columns": [...],
        "shape": [D], "on_nan": ..., "transforms": {...}}`` (the fitted preprocessing's columns once fitted
        or loaded, else the configured ones)."""
        if self._scaler is not None:
            return rows_spec(self._scaler.columns, self.on_nan,
                             dict(zip(self._scaler.columns, self._scaler.transform_names)))
        return rows_spec(self.feature_columns, self.on_nan, self.transforms)

    def read_raw(self, path: str | Path) -> tuple[torch.Tensor, list[str]]:
        """Raw feature rows float32 ``(N, D)`` of a CSV / Parquet file and their names (0-based data row
        numbers as text); see :func:`aelab.data.sources.table.read_raw_rows`.

        Raises:
            aelab.data.errors.DataError: an unreadable file, missing feature columns (naming them and the
                available ones), non-numeric or missing values (naming column and row).
        """
        return read_raw_rows(path, self.input_spec())

    def as_raw(self, x) -> torch.Tensor:
        """In-memory rows (a DataFrame with the feature columns, or ``(N, D)`` in feature order) as raw
        float32 ``(N, D)``; see :func:`aelab.data.sources.table.as_rows`.

        Raises:
            aelab.data.errors.DataError: missing columns, the wrong width (naming the expected columns),
                non-numeric or missing values.
        """
        return as_rows(x, self.input_spec())

    def raw_test_inputs(self) -> torch.Tensor:
        """The test rows before preprocessing: float32 ``(N, D)`` (what an exported model takes)."""
        self._require("test_set")
        return self._raw[torch.from_numpy(self._parts["test"])]

    def read_inputs(self, path: str | Path) -> InMemoryDataset:
        """New rows from a CSV / Parquet file with the feature columns (others are ignored), preprocessed
        exactly as the training rows; ``names`` are the 0-based data row numbers as text. Labels: 0/1
        (with ``anomaly`` columns) if the file has the label column, else ``-1``. Missing values follow
        ``on_nan`` (``drop``: those rows are absent from the result).

        Raises:
            aelab.data.errors.DataError: an unreadable file, missing feature columns (naming them and the
                available ones), non-numeric or missing values (naming column and row), values outside a
                transform's domain.
        """
        scaler = self.preprocessor()
        spec = self.input_spec()
        columns = spec["columns"]
        available = read_columns(path)
        check_columns(path, columns, available, "feature columns")
        label = self.label_column if self.label_column and self.label_column in available else None
        df = read_table(path, columns + ([label] if label else []))
        x, rows = feature_matrix(df, columns, path, self.on_nan)
        check_transforms(x, rows, columns, spec["transforms"], path)
        inputs = scaler.transform(torch.from_numpy(x))
        names = [str(r) for r in rows]
        n = len(rows)
        if label is None:
            return InMemoryDataset(inputs, torch.full((n,), -1, dtype=torch.long),
                                   {"labeled": torch.zeros(n, dtype=torch.bool)}, names=names)
        anomaly = torch.from_numpy(anomaly_flags(df.loc[rows, label], self.normal_label, path, label))
        extras = {"anomaly": anomaly, "anomaly_type": torch.where(anomaly == 1, NOVEL, NORMAL),
                  "labeled": torch.ones(n, dtype=torch.bool)}
        return InMemoryDataset(inputs, anomaly.clone(), extras, names=names)

    def prepare_rows(self, rows) -> torch.Tensor:
        """Raw rows -> model input float32 ``(N, D)`` (for :class:`aelab.Detector` and scripts):
        :meth:`as_raw`, then the fitted :meth:`preprocessor`.

        Args:
            rows: a pandas DataFrame with (at least) the feature columns, or an array / tensor ``(N, D)``
                (or one row ``(D,)``) in :attr:`feature_columns` order. Missing or infinite values
                raise unless ``on_nan="fill"`` (rows are never dropped here: the output stays aligned
                with the input).

        Raises:
            aelab.data.errors.DataError: missing columns, the wrong width (naming the expected columns),
                non-numeric or missing values, values outside a transform's domain.
        """
        scaler = self.preprocessor()
        return scaler.transform(self.as_raw(rows))
