"""Tables as a source: CSV / Parquet files read with pandas, checked into a float32 feature matrix, and
the per-column transforms and scaling as one ``nn.Module`` (:class:`FeatureScaler`).

* :func:`read_table` reads a CSV file (any compression pandas infers from the name: ``.csv.gz``,
  ``.csv.bz2``, ``.csv.zip``, ``.csv.xz``, ``.csv.zst``) or a Parquet file (``.parquet``, ``.pq``,
  through pyarrow); :func:`read_columns` reads only the header (CSV) or the schema (Parquet).
* :func:`feature_matrix` checks the chosen columns (present, numeric, finite) and returns float32 rows
  ``(N, D)`` with their row numbers. Row numbers are always the 0-based index of the data row in the
  file (the header is not a row), also after rows were dropped.
* :class:`FeatureScaler` is raw rows -> model input in one module: missing-value filling (optional),
  per-column transforms (``log1p`` e.g. for ``Amount``), then a scikit-learn scaler fitted on the rows
  it is given (:meth:`FeatureScaler.fit`): ``standard`` (``StandardScaler``: mean and standard
  deviation), ``robust`` (``RobustScaler``: median and interquartile range), ``quantile``
  (``QuantileTransformer(output_distribution="normal")``: each feature through its empirical CDF, then
  the standard normal quantile function) or ``none``; see scikit-learn's user guide, "Preprocessing
  data" (Pedregosa et al. 2011, JMLR 12). The module holds every fitted number as a buffer and uses only
  element-wise operations, comparisons, sums, ``gather`` and ``where``, so it traces into ONNX and
  TorchScript (it is what ``aelab export`` puts in front of the network).

Every problem raises :class:`aelab.data.errors.DataError` with one short message naming the file (and
the column, row and value where there is one).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from aelab.data.errors import DataError

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_COMPRESSIONS = ("", ".gz", ".bz2", ".zip", ".xz", ".zst", ".tar", ".tar.gz", ".tar.bz2", ".tar.xz")
TRANSFORMS = ("identity", "log1p", "signed_log1p")
SCALERS = ("standard", "robust", "quantile", "none")
ON_NAN = ("raise", "drop", "fill")
QUANTILE_BOUND = 1e-7  # scikit-learn's BOUNDS_THRESHOLD: inputs this close to the fitted extremes saturate
SAMPLE_ROWS = 1000  # rows read to find the numeric columns of a CSV file


def table_format(path: str | Path) -> str:
    """``"csv"`` or ``"parquet"`` from the file name (case-insensitive).

    Raises:
        DataError: another extension (naming the file and the supported ones).
    """
    name = Path(path).name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if any(name.endswith(".csv" + c) for c in CSV_COMPRESSIONS):
        return "csv"
    raise DataError(f"{path}: unknown table format; expected .csv (optionally compressed: "
                    f"{', '.join('.csv' + c for c in CSV_COMPRESSIONS if c)}) or {' / '.join(PARQUET_SUFFIXES)}")


def _check_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: table file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    return path


def _read_error(path: Path, err: BaseException) -> DataError:
    text = str(err).strip().splitlines()
    return DataError(f"{path}: cannot read table ({type(err).__name__}: {text[0] if text else 'no details'})")


_READ_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, EOFError, UnicodeDecodeError)
try:  # pyarrow's errors (corrupt Parquet) derive from ArrowException, not all from the builtins above
    import pyarrow as _pa

    _READ_ERRORS = (*_READ_ERRORS, _pa.lib.ArrowException)
except ImportError:  # pragma: no cover - pyarrow is a dependency of pandas' Parquet reader
    _pa = None
try:
    import zlib as _zlib

    _READ_ERRORS = (*_READ_ERRORS, _zlib.error)
except ImportError:  # pragma: no cover
    pass


def read_columns(path: str | Path) -> list[str]:
    """The column names of a table file: the CSV header (first line only) or the Parquet schema.

    Raises:
        DataError: a missing, unreadable or empty file, or an unknown extension.
    """
    path = _check_file(path)
    fmt = table_format(path)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return [str(c) for c in pq.read_schema(path).names]
        return [str(c) for c in pd.read_csv(path, nrows=0).columns]
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the table is empty (no header, no rows)") from None
    except _READ_ERRORS as err:
        raise _read_error(path, err) from None


def numeric_columns(path: str | Path) -> list[str]:
    """The columns of a table file that hold numbers: by the Parquet schema (integer, floating point,
    boolean), or for CSV by pandas' types on the first ``SAMPLE_ROWS`` rows (a column that is empty
    there counts as numeric). Cheap: the whole file is not read.

    Raises:
        DataError: as :func:`read_table`.
    """
    path = _check_file(path)
    fmt = table_format(path)
    try:
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            schema = pq.read_schema(path)
            return [str(f.name) for f in schema
                    if pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_boolean(f.type)]
        sample = pd.read_csv(path, nrows=SAMPLE_ROWS)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the table is empty (no header, no rows)") from None
    except _READ_ERRORS as err:
        raise _read_error(path, err) from None
    return [str(c) for c in sample.columns if pd.api.types.is_numeric_dtype(sample[c])]


def check_columns(path: str | Path, wanted: Sequence[str], available: Sequence[str], what: str = "columns") -> None:
    """Raises DataError naming the file, the ``wanted`` columns missing from ``available`` and the
    available ones."""
    missing = [c for c in wanted if c not in set(available)]
    if missing:
        shown = list(available)[:40]
        more = f" ... ({len(available)} in all)" if len(available) > len(shown) else ""
        raise DataError(f"{path}: missing {what} {missing}; available: {shown}{more}")


def read_table(path: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A whole CSV or Parquet table as a DataFrame (index: 0-based data row numbers).

    Args:
        path: ``.csv`` (compression inferred from the name: ``.csv.gz``, ``.csv.bz2``, ...), ``.parquet``
            or ``.pq``.
        columns: read only these columns, returned in this order; ``None``: all, in the file's order.

    Raises:
        DataError: a missing file, an unknown extension, an unreadable or corrupt file, an empty table
            (no rows), or requested columns the file lacks (naming them and listing the available ones).
    """
    path = _check_file(path)
    fmt = table_format(path)
    if columns is not None:
        columns = list(dict.fromkeys(columns))
        check_columns(path, columns, read_columns(path))
    try:
        if fmt == "parquet":
            df = pd.read_parquet(path, columns=columns)
        else:
            df = pd.read_csv(path, usecols=columns, low_memory=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the table is empty (no header, no rows)") from None
    except _READ_ERRORS as err:
        raise _read_error(path, err) from None
    if len(df) == 0:
        raise DataError(f"{path}: the table has no data rows (columns: {[str(c) for c in df.columns][:40]})")
    df = df.reset_index(drop=True)
    df.columns = [str(c) for c in df.columns]
    return df if columns is None else df[columns]


def numeric_column(df: pd.DataFrame, column: str, source: str | Path) -> np.ndarray:
    """Column ``column`` of ``df`` as float64 ``(N,)`` (booleans as 0/1; empty cells NaN).

    Raises:
        DataError: a value that is not a number, naming the source, the column, the first such row
            (0-based data row) and its value.
    """
    series = df[column]
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    converted = pd.to_numeric(series, errors="coerce")
    bad = converted.isna().to_numpy() & series.notna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{source}: column {column!r} is not numeric: row {df.index[i]} holds "
                        f"{series.iloc[i]!r} ({int(bad.sum())} non-numeric value(s) in all)")
    return converted.to_numpy(dtype=np.float64, na_value=np.nan)


def feature_matrix(df: pd.DataFrame, columns: Sequence[str], source: str | Path,
                   on_nan: str = "raise") -> tuple[np.ndarray, np.ndarray]:
    """The feature matrix of ``df``: float32 rows ``(N, D)`` in the order of ``columns``, and their row
    numbers ``(N,)`` int64 (the 0-based data rows of the file, ``df.index``).

    Missing values (empty cells, NaN) and infinite ones (``inf``, or numbers beyond float32) are treated
    alike, by ``on_nan``: ``raise`` (an error naming the source, the first such row and its column),
    ``drop`` (those rows are left out; the count and the first row are printed) or ``fill`` (kept as NaN
    here: :class:`FeatureScaler` fills them with the medians of its fitting rows).

    Raises:
        DataError: missing columns (naming them and the available ones), a non-numeric value (naming
            column, row and value), a missing value with ``on_nan="raise"``, every row dropped.
        ValueError: an unknown ``on_nan``.
    """
    if on_nan not in ON_NAN:
        raise ValueError(f"on_nan must be one of {ON_NAN}, got {on_nan!r}")
    check_columns(source, columns, [str(c) for c in df.columns])
    rows = df.index.to_numpy(dtype=np.int64)
    x = np.empty((len(df), len(columns)), dtype=np.float32)
    with np.errstate(over="ignore"):
        for j, c in enumerate(columns):
            x[:, j] = numeric_column(df, c, source)
    bad = ~np.isfinite(x)
    if not bad.any() or on_nan == "fill":
        if on_nan == "fill":
            x[bad] = np.nan  # infinities count as missing
        return x, rows
    bad_rows = bad.any(axis=1)
    first = int(np.flatnonzero(bad_rows)[0])
    column = columns[int(np.flatnonzero(bad[first])[0])]
    value = float(x[first, columns.index(column)])
    if on_nan == "raise":
        raise DataError(f"{source}: column {column!r} has a missing or infinite value ({value}) at row {rows[first]} "
                        f"({int(bad_rows.sum())} row(s) in all); set on_nan to 'drop' or 'fill'")
    keep = ~bad_rows
    if not keep.any():
        raise DataError(f"{source}: every row has a missing or infinite value (on_nan='drop')")
    print(f"{source}: dropped {int(bad_rows.sum())} of {len(x)} rows with missing or infinite values "
          f"(first: row {rows[first]}, column {column!r})", flush=True)
    return x[keep], rows[keep]


def check_transforms(x: np.ndarray, rows: np.ndarray, columns: Sequence[str], transforms: Mapping[str, str],
                     source: str | Path) -> None:
    """Raises DataError if a value of ``x`` ``(N, D)`` lies outside the domain of its column's transform
    (``log1p`` needs values > -1), naming the source, the column, the first row and the value."""
    for j, c in enumerate(columns):
        if transforms.get(c, "identity") == "log1p":
            bad = x[:, j] <= -1
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise DataError(f"{source}: column {c!r} has the value {float(x[i, j])} at row {rows[i]}; "
                                f"its transform 'log1p' needs values > -1 (use 'signed_log1p' for signed data)")


def check_transform_names(transforms: Mapping[str, str], columns: Sequence[str] | None = None) -> None:
    """Raises ValueError for an unknown transform name (naming the known ones) or, given ``columns``, a
    transform of a column that is not a feature."""
    for c, t in transforms.items():
        if t not in TRANSFORMS:
            raise ValueError(f"unknown transform {t!r} for column {c!r}; expected one of {TRANSFORMS}")
    if columns is not None:
        extra = [c for c in transforms if c not in set(columns)]
        if extra:
            raise ValueError(f"transforms name columns {extra} that are not features; the features are {list(columns)}")


# -- the standard normal quantile function without erfinv (ONNX has no such operator) ------------------
# Wichura (1988), "Algorithm AS 241: The percentage points of the normal distribution", Applied
# Statistics 37(3): 477-484, PPND16 (relative accuracy about 1e-16). Only the central and the
# intermediate branch are needed: probabilities are clipped to [1e-7, 1 - 1e-7] first, where
# sqrt(-log(p)) <= 4.02 < 5.
_AS241_A = (3.3871328727963666080e0, 1.3314166789178437745e2, 1.9715909503065514427e3, 1.3731693765509461125e4,
            4.5921953931549871457e4, 6.7265770927008700853e4, 3.3430575583588128105e4, 2.5090809287301226727e3)
_AS241_B = (1.0, 4.2313330701600911252e1, 6.8718700749205790830e2, 5.3941960214247511077e3,
            2.1213794301586595867e4, 3.9307895800092710610e4, 2.8729085735721942674e4, 5.2264952788528545610e3)
_AS241_C = (1.42343711074968357734e0, 4.63033784615654529590e0, 5.76949722146069140550e0, 3.64784832476320460504e0,
            1.27045825245236838258e0, 2.41780725177450611770e-1, 2.27238449892691845833e-2, 7.74545014278341407640e-4)
_AS241_D = (1.0, 2.05319162663775882187e0, 1.67638483018380384940e0, 6.89767334985100004550e-1,
            1.48103976427480074590e-1, 1.51986665636164571966e-2, 5.47593808499534494600e-4, 1.05075007164441684324e-9)


def _poly(coefficients: Sequence[float], r: torch.Tensor) -> torch.Tensor:
    out = torch.full_like(r, coefficients[-1])
    for c in reversed(coefficients[:-1]):
        out = out * r + c
    return out


def normal_ppf(p: torch.Tensor) -> torch.Tensor:
    """The standard normal quantile function at ``p`` in [1e-7, 1 - 1e-7] (any shape; float64 for full
    accuracy), by Wichura's AS 241 with element-wise operations only (traceable into ONNX)."""
    q = p - 0.5
    r_c = 0.180625 - q * q
    central = q * _poly(_AS241_A, r_c) / _poly(_AS241_B, r_c)
    tail_p = torch.minimum(p, 1.0 - p).clamp_min(1e-300)
    r_t = torch.sqrt(-torch.log(tail_p)) - 1.6
    tail = _poly(_AS241_C, r_t) / _poly(_AS241_D, r_t)
    tail = torch.where(q < 0, -tail, tail)
    return torch.where(q.abs() <= 0.425, central, tail)


_CODES = {name: i for i, name in enumerate(TRANSFORMS)}


class FeatureScaler(nn.Module):
    """Raw feature rows -> model input: fill missing values, per-column transforms, then the fitted
    scaler; one module (what ``aelab export`` puts in front of the network).

    Build it with :meth:`fit` (or :meth:`from_state`). ``forward`` takes float rows ``(N, D)`` in the
    order of :attr:`columns` and returns float32 ``(N, D)``; it computes in the dtype of its buffers
    (float64) for exactness.

    Steps, per column:
        1. ``fill`` (``fill_missing``): NaN and infinite values -> the column's median over the fitting
           rows (raw units).
        2. transform: ``identity``; ``log1p`` (``log(1 + x)``, e.g. for amounts in euros; values <= -1
           give NaN here, and are rejected by :func:`check_transforms` before); ``signed_log1p``
           (``sign(x) * log(1 + |x|)``).
        3. scaler: ``standard`` / ``robust`` / ``none`` are ``(x - center) / scale`` (``center``: mean or
           median; ``scale``: standard deviation (population, ``ddof=0``) or interquartile range; a
           constant column gets scale 1, as in scikit-learn). ``quantile``: scikit-learn's
           ``QuantileTransformer(output_distribution="normal")``: ``p`` = the mean of the
           left-continuous and right-continuous piecewise-linear interpolations of the fitted quantiles
           ``(K, D)`` against the references ``(K,)`` (``np.interp`` both ways, as scikit-learn does for
           repeated quantiles), then ``Phi^-1(p)`` (:func:`normal_ppf`), clipped to +-5.1993 (the
           normal quantile of 1e-7). Inputs within 1e-7 of or beyond the fitted minimum (maximum)
           saturate at -5.1993 (+5.1993), like scikit-learn; inside the fitted range it matches
           scikit-learn to about 1e-12 before the float32 cast.

    Tracing: the interval of each value is found by counting the quantiles below it with broadcast
    comparisons and sums in two levels (:meth:`knots_below`: about ``2 * sqrt(K)`` comparisons per value,
    ``N * D * sqrt(K)`` booleans per call; no ``torch.searchsorted``), then ``gather``; everything else is
    element-wise. :meth:`transform` (eager, big arrays) counts with ``torch.searchsorted`` instead: the
    same counts, hence the same output.

    Args:
        columns: feature names, in input order.
        transforms: one transform name per column.
        kind: ``standard``, ``robust``, ``quantile`` or ``none``.
        center, scale: ``(D,)`` (linear kinds).
        quantiles: ``(K, D)`` nondecreasing per column; references ``(K,)`` in [0, 1] (``quantile``).
        fill: ``(D,)`` fill values, or ``None`` for no filling.
    """

    def __init__(self, columns: Sequence[str], transforms: Sequence[str], kind: str = "none",
                 center: torch.Tensor | None = None, scale: torch.Tensor | None = None,
                 quantiles: torch.Tensor | None = None, references: torch.Tensor | None = None,
                 fill: torch.Tensor | None = None) -> None:
        super().__init__()
        if kind not in SCALERS:
            raise ValueError(f"scaler must be one of {SCALERS}, got {kind!r}")
        if len(transforms) != len(columns):
            raise ValueError(f"{len(columns)} columns but {len(transforms)} transforms")
        check_transform_names(dict(zip(columns, transforms)))
        d = len(columns)
        self.columns = [str(c) for c in columns]
        self.transform_names = [str(t) for t in transforms]
        self.kind = kind
        self.fill_missing = fill is not None
        f64 = dict(dtype=torch.float64)
        codes = torch.tensor([_CODES[t] for t in self.transform_names], dtype=torch.long)
        self.register_buffer("log1p_mask", codes == _CODES["log1p"])
        self.register_buffer("signed_log1p_mask", codes == _CODES["signed_log1p"])

        def vector(value, default: float) -> torch.Tensor:
            return torch.full((d,), default, **f64) if value is None else torch.as_tensor(value, **f64).clone()

        self.register_buffer("fill", vector(fill, 0.0))
        self.register_buffer("center", vector(center, 0.0))
        self.register_buffer("scale", vector(scale, 1.0))
        if kind == "quantile":
            if quantiles is None or references is None:
                raise ValueError("the quantile scaler needs quantiles and references")
            q = torch.as_tensor(quantiles, **f64).clone()
            ref = torch.as_tensor(references, **f64).clone()
            if q.ndim != 2 or q.shape[1] != d or q.shape[0] != len(ref) or len(ref) < 2:
                raise ValueError(f"quantiles must be (K, {d}) with K >= 2 references, got {tuple(q.shape)}, "
                                 f"{tuple(ref.shape)}")
        else:
            q, ref = torch.zeros(2, d, **f64), torch.tensor([0.0, 1.0], **f64)
        width = q[1:] - q[:-1]
        dy = (ref[1:] - ref[:-1]).unsqueeze(1)
        self.register_buffer("quantiles", q)
        self.register_buffer("references", ref)
        self.register_buffer("slopes", torch.where(width > 0, dy / torch.where(width > 0, width, 1.0), 0.0))
        # derived, for counting the quantiles below a value (knots_below): (D, K), the first quantile
        # of each block of B, the flat (K * D) quantiles, the offsets 0..B-1 and the column ids
        self._block = max(1, math.ceil(math.sqrt(q.shape[0])))
        self.register_buffer("_q_t", q.t().contiguous(), persistent=False)
        self.register_buffer("_q_coarse", self._q_t[:, :: self._block].contiguous(), persistent=False)
        self.register_buffer("_q_flat", q.reshape(-1).clone(), persistent=False)
        self.register_buffer("_block_offsets", torch.arange(self._block), persistent=False)
        self.register_buffer("_column_ids", torch.arange(d).unsqueeze(-1), persistent=False)
        eps = QUANTILE_BOUND - float(np.spacing(1))
        self.register_buffer("p_bounds", torch.tensor([eps, 1.0 - eps], **f64), persistent=False)
        if any(s.shape != (d,) for s in (self.center, self.scale, self.fill)):
            raise ValueError(f"center, scale and fill must each have {d} values")

    @property
    def num_features(self) -> int:
        return len(self.columns)

    # -- building --------------------------------------------------------------------------------
    @classmethod
    def fit(cls, x: np.ndarray | torch.Tensor, columns: Sequence[str], transforms: Mapping[str, str] | None = None,
            kind: str = "standard", fill_missing: bool = False, seed: int = 0) -> FeatureScaler:
        """Fit on raw rows ``x`` ``(N, D)`` (only these rows: give it the training normal rows).

        The fill values are the columns' medians over the finite values of ``x``; the scaler (scikit-learn
        ``StandardScaler()``, ``RobustScaler()`` (quantile range 25-75) or ``QuantileTransformer(n_quantiles=
        min(1000, N), output_distribution="normal", subsample=N)``, i.e. every row) is fitted on the
        filled and transformed rows, computed by this module's own code.

        Raises:
            ValueError: no rows, a wrong width, unknown transform or scaler names.
            DataError: a column without any finite value while filling.
        """
        x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
        if x.ndim != 2 or x.shape[1] != len(columns) or len(x) == 0:
            raise ValueError(f"need rows (N >= 1, {len(columns)}), got {tuple(x.shape)}")
        transforms = dict(transforms or {})
        check_transform_names(transforms, columns)
        names = [transforms.get(c, "identity") for c in columns]
        fill = None
        if fill_missing:
            finite = torch.isfinite(x)
            empty = [c for c, ok in zip(columns, finite.any(0).tolist()) if not ok]
            if empty:
                raise DataError(f"columns {empty} have no finite value in the fitting rows: nothing to fill with")
            fill = torch.from_numpy(np.nanmedian(torch.where(finite, x, torch.nan).numpy(), axis=0))
        pre = cls(columns, names, "none", fill=fill)
        z = pre.prepare(x).numpy()
        if kind == "none":
            return pre
        sk = sklearn_scaler(kind, len(z), seed).fit(z)
        if kind == "quantile":
            return cls(columns, names, kind, quantiles=torch.from_numpy(sk.quantiles_),
                       references=torch.from_numpy(np.asarray(sk.references_, dtype=np.float64)), fill=fill)
        center = sk.mean_ if kind == "standard" else sk.center_
        return cls(columns, names, kind, center=torch.from_numpy(np.asarray(center, dtype=np.float64)),
                   scale=torch.from_numpy(np.asarray(sk.scale_, dtype=np.float64)), fill=fill)

    def config(self) -> dict:
        """What rebuilds this module with :meth:`from_state` besides its buffers: plain lists and strings."""
        return {"columns": list(self.columns), "transforms": list(self.transform_names), "kind": self.kind,
                "fill_missing": bool(self.fill_missing)}

    def to_state(self) -> dict:
        """Configuration and buffers as plain Python lists / strings and CPU tensors (loads with
        ``torch.load(weights_only=True)``)."""
        return {**self.config(), "buffers": {k: v.detach().cpu().clone() for k, v in self.state_dict().items()}}

    @classmethod
    def from_state(cls, state: Mapping) -> FeatureScaler:
        """The module :meth:`to_state` described.

        Raises:
            DataError: a state without the expected entries.
        """
        try:
            b = state["buffers"]
            return cls(state["columns"], state["transforms"], state["kind"], center=b["center"], scale=b["scale"],
                       quantiles=b["quantiles"], references=b["references"],
                       fill=b["fill"] if state["fill_missing"] else None)
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"not a FeatureScaler state ({type(err).__name__}: {err})") from None

    def same_as(self, other: FeatureScaler) -> bool:
        """Whether ``other`` has the same configuration and buffers."""
        return self.config() == other.config() and all(
            torch.equal(v, other.state_dict()[k]) for k, v in self.state_dict().items())

    # -- applying --------------------------------------------------------------------------------
    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Steps 1-2 (fill, transforms) in the buffers' dtype: ``(N, D)`` -> ``(N, D)``."""
        x = x.to(self.center.dtype)
        if self.fill_missing:
            x = torch.where(torch.isfinite(x), x, self.fill)
        if any(t == "log1p" for t in self.transform_names):
            x = torch.where(self.log1p_mask, torch.log1p(x), x)
        if any(t == "signed_log1p" for t in self.transform_names):
            x = torch.where(self.signed_log1p_mask, torch.sign(x) * torch.log1p(x.abs()), x)
        return x

    def knots_below(self, x: torch.Tensor, inclusive: bool, search: bool = False) -> torch.Tensor:
        """How many fitted quantiles of each column are ``<= x`` (``inclusive``) or ``< x``: int64 ``(N, D)``.

        Traceable form (default): a two-level count with broadcast comparisons: first against every
        ``B``-th quantile (``B = ceil(sqrt(K))``), then within the one block of ``B`` quantiles that can
        hold ``x`` (gathered), about ``2 * sqrt(K)`` comparisons per value instead of ``K``. ``search``:
        ``torch.searchsorted`` (eager only; the same counts, used for big arrays by :meth:`transform`).
        """
        if search:
            return torch.searchsorted(self._q_t, x.t().contiguous(), right=inclusive).t()
        xs = x.unsqueeze(-1)
        above = torch.ge if inclusive else torch.gt
        block = (above(xs, self._q_coarse).sum(-1) - 1).clamp_min(0)            # (N, D)
        pos = block.unsqueeze(-1) * self._block + self._block_offsets          # (N, D, B) positions
        inside = pos < self.quantiles.shape[0]
        knots = self._q_flat[pos.clamp_max(self.quantiles.shape[0] - 1) * self.num_features + self._column_ids]
        return block * self._block + (above(xs, knots) & inside).sum(-1)

    def quantile_normal(self, x: torch.Tensor, search: bool = False) -> torch.Tensor:
        """Step 3 of ``quantile``: ``(N, D)`` (buffers' dtype) -> standard normal scores ``(N, D)``
        (``search``: see :meth:`knots_below`)."""
        k = self.quantiles.shape[0]
        q, ref, slopes = self.quantiles, self.references, self.slopes
        # index of the last quantile <= x (np.interp's interval) and of the last quantile < x (the
        # interval np.interp finds on the reversed, negated arrays)
        j_right = (self.knots_below(x, True, search) - 1).clamp(0, k - 2)
        j_left = (self.knots_below(x, False, search) - 1).clamp(0, k - 2)
        q_r, s_r = torch.gather(q, 0, j_right), torch.gather(slopes, 0, j_right)
        q_l1, s_l = torch.gather(q, 0, j_left + 1), torch.gather(slopes, 0, j_left)
        up = ref[j_right] + s_r * (x - q_r)
        down = ref[j_left + 1] - s_l * (q_l1 - x)
        p = 0.5 * (up + down)
        p = torch.where(x + QUANTILE_BOUND > q[-1], torch.ones_like(p), p)
        p = torch.where(x - QUANTILE_BOUND < q[0], torch.zeros_like(p), p)
        # clip as scikit-learn does, with float64 tensors as bounds (an exported graph could round Python
        # scalars to float32, and 1 - 1e-7 in float32 is 1 - 1.19e-7)
        return normal_ppf(torch.minimum(torch.maximum(p, self.p_bounds[0]), self.p_bounds[1]))

    def forward(self, x: torch.Tensor, search: bool = False) -> torch.Tensor:
        """Raw rows ``(N, D)`` (float, columns in :attr:`columns` order) -> model input float32 ``(N, D)``
        (``search``: count quantiles with ``torch.searchsorted``, eager only; the same result)."""
        x = self.prepare(x)
        if self.kind == "quantile":
            x = self.quantile_normal(x, search)
        elif self.kind != "none":
            x = (x - self.center) / self.scale
        return x.to(torch.float32)

    @torch.no_grad()
    def transform(self, x: np.ndarray | torch.Tensor, chunk: int = 65536) -> torch.Tensor:
        """:meth:`forward` on many rows in eager mode (``torch.searchsorted`` for the quantile scaler, the
        same numbers as the traceable form), ``chunk`` rows at a time; float32 ``(N, D)``.

        Raises:
            DataError: rows of the wrong width (naming the expected columns).
        """
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise DataError(f"rows must have {self.num_features} features {self.columns}, got shape {tuple(x.shape)}")
        if len(x) <= chunk:
            return self(x, search=True)
        return torch.cat([self(x[i : i + chunk], search=True) for i in range(0, len(x), chunk)])

    def extra_repr(self) -> str:
        transformed = {c: t for c, t in zip(self.columns, self.transform_names) if t != "identity"}
        return (f"features={self.num_features}, scaler={self.kind!r}, transforms={transformed}, "
                f"fill_missing={self.fill_missing}")


def sklearn_scaler(kind: str, n: int, seed: int = 0):
    """The unfitted scikit-learn scaler of ``kind`` for ``n`` fitting rows (see :meth:`FeatureScaler.fit`)."""
    from sklearn.preprocessing import QuantileTransformer, RobustScaler, StandardScaler

    if kind == "standard":
        return StandardScaler()
    if kind == "robust":
        return RobustScaler()
    if kind == "quantile":
        return QuantileTransformer(n_quantiles=max(2, min(1000, n)), output_distribution="normal",
                                   subsample=max(n, 2), random_state=seed)
    raise ValueError(f"no scikit-learn scaler for {kind!r}; expected one of {SCALERS[:-1]}")



# -- raw rows for a trained model (aelab.data.inputs: aelab predict, aelab.Detector, exported models) ----
def rows_spec(columns: Sequence[str], on_nan: str = "raise", transforms: Mapping[str, str] | None = None) -> dict:
    """The input spec of table rows (JSON-able): ``{"kind": "rows", "columns": [...], "shape": [D],
    "on_nan": ..., "transforms": {column: name} (the non-identity ones)}``."""
    return {"kind": "rows", "columns": list(columns), "shape": [len(columns)], "on_nan": on_nan,
            "transforms": {c: t for c, t in (transforms or {}).items() if t != "identity"}}


def read_raw_rows(path: str | Path, spec: Mapping) -> tuple[torch.Tensor, list[str]]:
    """Raw rows float32 ``(N, D)`` of the spec's columns (in its order; other columns are ignored) from a
    CSV / Parquet file, and their names (the 0-based data row numbers as text). Missing or infinite
    values follow the spec's ``on_nan`` (``raise``; ``drop``: those rows are absent; ``fill``: kept as NaN
    for the preprocessing module to fill).

    Raises:
        DataError: an unreadable file, missing columns (naming them and the available ones), a non-numeric
            or missing value (naming column and row), a value outside a transform's domain.
    """
    columns = list(spec["columns"])
    check_columns(path, columns, read_columns(path), "feature columns")
    df = read_table(path, columns)
    x, rows = feature_matrix(df, columns, path, spec.get("on_nan", "raise"))
    check_transforms(x, rows, columns, spec.get("transforms") or {}, path)
    return torch.from_numpy(x), [str(r) for r in rows]


def as_rows(x, spec: Mapping) -> torch.Tensor:
    """Rows given in memory -> raw float32 ``(N, D)`` in the spec's column order: a pandas DataFrame with
    (at least) those columns, or an array / tensor ``(N, D)`` (or one row ``(D,)``) already in that
    order. Rows are never dropped (the output stays aligned with the input): missing or infinite values
    raise unless the spec's ``on_nan`` is ``fill``.

    Raises:
        DataError: missing columns, the wrong width (naming the expected columns), a non-numeric or missing
            value (naming column and row), a value outside a transform's domain.
    """
    columns = list(spec["columns"])
    on_nan = "fill" if spec.get("on_nan") == "fill" else "raise"
    if isinstance(x, pd.DataFrame):
        frame = x.reset_index(drop=True)
        frame.columns = [str(c) for c in frame.columns]
    else:
        arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[1] != len(columns):
            raise DataError(f"rows must have {len(columns)} features in this order: {columns}; got shape "
                            f"{tuple(arr.shape)}")
        frame = pd.DataFrame(arr, columns=columns)
    rows, numbers = feature_matrix(frame, columns, "rows", on_nan)
    check_transforms(rows, numbers, columns, spec.get("transforms") or {}, "rows")
    return torch.from_numpy(rows)
