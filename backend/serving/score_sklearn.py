"""ModelDeck's built-in scoring script for scikit-learn models (the tutorial's contract, stricter input).

init() loads the single .pkl/.joblib/.pickle file in $AZUREML_MODEL_DIR (or $MODEL_DIR);
run(raw_data) takes '{"data": [[...], ...]}' (str or bytes) and returns the predicted labels as a list;
run_array(X) does the same for a numpy array (the server's application/x-npy path). Asked for
confidence (`"proba": true` in the JSON body; `?proba=true` on the .npy path), both answer
{"predictions": [...], "probabilities": [[one per class], ...], "classes": [...]} instead, with the
probabilities in the model's class order. Bad input raises
InvalidInput, which the server answers with 400 and the message; anything else it answers with 500.
Strict JSON: every value must be a JSON number (no strings, booleans or null), but for a model fitted on named
columns whose pipeline encodes some of them as categories (a OneHotEncoder or OrdinalEncoder in a ColumnTransformer):
rows as objects or a split table, those columns' values the category names (checked against the categories the
encoders learnt; /info lists them as `categories`). The labels are always the
model's predict's, with or without probabilities; those of scikit-learn's linear classifiers are computed
directly from the model's coefficients (see _linear_predict). Class names given when the model was
registered come with it as CLASS_NAMES_FILE (a JSON list); where the model's classes are 0..n-1 they are
answered instead of those numbers (labels, "classes" and /info alike), so every client sees the names.
"""

import json
import os
import sys
import warnings
from typing import Any

import joblib
import numpy as np
import orjson
import sklearn

simdjson: Any
try:  # simdjson turns {"data": [[...]]} into one float buffer without Python objects, refusing anything
    import simdjson  # but numbers: 2x faster than orjson for one row, ~3x for the whole test set
except ImportError:  # the strict path below handles everything on its own
    simdjson = None

MODEL_SUFFIXES = (".pkl", ".joblib", ".pickle")
CLASS_NAMES_FILE = "modeldeck-class-names.json"  # written by ModelDeck's registry (registry.CLASS_NAMES_FILE)
NUMBER_TYPES = (int, float)
FLOAT32_MAX = 3.4028234663852886e38
MAX_FRAME_VALUES = 1_000_000  # values a request with text may hold (each a Python object: ~150 MB at most)
FAST_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))  # what fast_predict takes as scikit-learn would
accepts_bytes = True  # the server may hand run() the body as bytes (orjson and simdjson parse both)
supports_proba = True  # run_array(X, proba=True) answers class probabilities (the server's ?proba=true)
accepts_uint8 = True  # run_array takes uint8 pixels (0..255) and scales them by 1/255 itself
accepts_records = True  # with feature_names: run() takes rows as objects of the model's columns too
json_value_bytes = 44  # run()'s peak memory per JSON value (measured 38-40 B): the server reserves it before a big body
model: Any = None
n_features = None
feature_names = None  # the names of the columns the model was fitted on, in order (reported by /info)
categories = None  # {column: [category, ...]} for the columns the model's pipeline encodes from text (/info)
classes = None  # the model's class labels in its own order (or the names given for them), reported by /info
class_names: Any = None  # numpy array of the names answered for classes 0..n-1, or None: see init()
fast_predict: Any = None  # set by init() for scikit-learn's linear classifiers: see _linear_predict
argmax_is_predict = False  # set by init(): the model's predict is its predict_proba's argmax by construction


class InvalidInput(ValueError):
    """The request is not something this script can score: the server answers 400 with the message."""

    http_status = 400


class TooManyValues(InvalidInput):
    """More values with text among them than one request may hold (their Python objects outweigh the body
    budget's estimate per value): the server answers 413."""

    http_status = 413


def init():
    global model, n_features, feature_names, categories, classes, class_names, fast_predict, argmax_is_predict
    model_dir = os.environ.get("AZUREML_MODEL_DIR") or os.environ["MODEL_DIR"]
    found = sorted(os.listdir(model_dir))
    candidates = [name for name in found if name.endswith(MODEL_SUFFIXES)]
    if len(candidates) != 1:
        raise RuntimeError(
            f"expected exactly one model file ({', '.join(MODEL_SUFFIXES)}) in {model_dir}, "
            f"found {len(candidates)}: {found}")
    model = joblib.load(os.path.join(model_dir, candidates[0]))
    n_features = getattr(model, "n_features_in_", None)
    named = getattr(model, "feature_names_in_", None)  # fitted on a DataFrame's columns
    feature_names = [str(name) for name in named] if named is not None else None
    if feature_names is not None:  # rows arrive as arrays in the columns' order, by design: nothing to warn of
        warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)
    categories = _text_categories(model, feature_names) or None
    found_classes = getattr(model, "classes_", None)
    classes = [c.item() if hasattr(c, "item") else c for c in found_classes] if found_classes is not None else None
    class_names = _given_names(model_dir, classes)
    if class_names is not None:
        classes = [str(name) for name in class_names]
    fast_predict = _linear_predict(model)
    argmax_is_predict = _predicts_argmax_of_proba(model)


def _text_categories(fitted, columns):
    """{column: [category, ...]} for the input columns a fitted pipeline encodes from text: the categories_ of each
    OneHotEncoder or OrdinalEncoder a ColumnTransformer gives columns by name ({} when there is none)."""
    found = {}
    for encoder, names in _encoders(fitted, columns):
        for name, known in zip(names, encoder.categories_, strict=True):  # _encoders checked the lengths
            if np.asarray(known).dtype.kind in "OUS":  # numbers stay numbers
                found[name] = [str(value) for value in known]
    return found


def _encoders(estimator, columns):
    """(encoder, the input columns it sees) for each encoder of categories reached from the input columns."""
    if columns is None:
        return
    if hasattr(estimator, "transformers_"):  # a ColumnTransformer: each part sees its own columns
        for _, part, selected in estimator.transformers_:
            if not isinstance(part, str):  # "drop", "passthrough"
                yield from _encoders(part, _columns_of(selected, columns))
    elif hasattr(estimator, "steps"):  # a Pipeline: its first step sees the input
        yield from _encoders(estimator.steps[0][1], columns)
    elif hasattr(estimator, "categories_") and len(estimator.categories_) == len(columns):
        yield estimator, columns


def _columns_of(selected, columns):
    """The names of the columns a ColumnTransformer's part `selected` (names, indices, a slice or a mask) takes."""
    try:
        chosen = np.asarray(columns, dtype=object)[selected] if not isinstance(selected, str) else [selected]
    except (IndexError, TypeError, ValueError):
        chosen = [name for name in np.atleast_1d(selected) if name in columns]
    return [str(name) for name in np.atleast_1d(chosen)] if len(np.atleast_1d(chosen)) else None


def _given_names(model_dir, found):
    """The names in CLASS_NAMES_FILE as a numpy array, when the model's classes `found` are 0..n-1 and there
    are n names; None otherwise (a model trained on names answers its own; said on stderr when they differ
    from the names given)."""
    path = os.path.join(model_dir, CLASS_NAMES_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        names = json.load(handle)
    if not (isinstance(names, list) and all(isinstance(name, str) for name in names)):
        print(f"{CLASS_NAMES_FILE} is not a list of names: the model's own classes are answered", file=sys.stderr)
        return None
    if found is not None and sorted(names) == sorted(str(c) for c in found):
        return None  # the model's own names (trained on them): nothing to map
    if found is None or len(names) != len(found) or list(found) != list(range(len(found))):
        print(f"the class names given ({len(names)}) are not for classes 0..n-1 (the model's: {found}): the model's "
              "own classes are answered", file=sys.stderr)
        return None
    return np.array(names, dtype=str)


def _named(labels):
    """Predicted classes 0..n-1 as the names given for them (unchanged without names)."""
    return labels if class_names is None else class_names[np.asarray(labels).astype(np.intp)]


def _fast_rows(raw_data):
    """(rows as float32, whether "proba" is true) of a well-formed {"data": [[numbers]]} body, or None
    for anything else (which the strict path then parses again and explains)."""
    if simdjson is None:
        return None
    try:  # a parser per call: one parser's documents are not safe to share between threads
        document: Any = simdjson.Parser().parse(raw_data)
        rows = document["data"]
        width = len(rows[0])
        if len(rows) > 1 and not all(len(row) == width for row in rows):
            return None
        flat = np.frombuffer(rows.as_buffer(of_type="d"), dtype=np.float64)
        proba = False if _surely_absent("proba", raw_data) else document.get("proba", False)
    except Exception:  # anything unexpected (a string for "data", a number for a row, ...): explain below
        return None
    if not width or not isinstance(proba, bool) or flat.size != len(rows) * width:  # rows of rows: explained below
        return None
    return flat.reshape(len(rows), width).astype(np.float32), proba


def _surely_absent(key, raw_data):
    """True when the JSON text `raw_data` cannot have `key`: neither it nor an escape (a key may be
    spelt with \\u escapes) occurs in it. Cheaper than a lookup that misses (~4 µs in simdjson)."""
    if isinstance(raw_data, bytes):
        return key.encode() not in raw_data and b"\\" not in raw_data
    return isinstance(raw_data, str) and key not in raw_data and "\\" not in raw_data


def run(raw_data):
    fast = _fast_rows(raw_data)
    if fast is not None:
        return run_array(*fast)
    try:
        payload = orjson.loads(raw_data)
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"the request body is not valid JSON: {e}") from None
    if not isinstance(payload, dict) or "data" not in payload:
        raise InvalidInput('the request must be a JSON object with a "data" key: {"data": [[...], ...]}')
    rows = payload["data"]
    if isinstance(rows, dict):  # a pandas DataFrame as to_dict(orient="split") or to_json(orient="split") gives it
        rows = _split_rows(rows)
    if not isinstance(rows, list) or not rows:
        raise InvalidInput('"data" must be a non-empty list of rows'
                           + (', or {"columns": [...], "data": [[...], ...]} (pandas\' split form)'
                              if feature_names else ""))
    if all(isinstance(row, dict) for row in rows):
        rows = _record_rows(rows)
    elif not all(isinstance(row, list) for row in rows):
        raise InvalidInput('"data" must be a list of rows, each a list of numbers'
                           + (f" or an object of the model's {len(feature_names)} columns" if feature_names else ""))
    proba = payload.get("proba", False)
    if not isinstance(proba, bool):
        raise InvalidInput(f'"proba" must be true or false, got {orjson.dumps(proba).decode()[:40]}')
    if categories:  # text in the columns the pipeline encodes
        return run_frame(rows, proba)
    lengths = {len(row) for row in rows}
    if len(lengths) != 1:
        raise InvalidInput(f'rows of "data" have different lengths: {sorted(lengths)}')
    for row in rows:
        for value in row:
            if type(value) not in NUMBER_TYPES:  # bool is a subclass of int: compare the exact type
                raise InvalidInput(f'every value in "data" must be a JSON number, got {orjson.dumps(value).decode()[:40]}')
    return run_array(np.array(rows, dtype=np.float32), proba)


def _record_rows(records):
    """Rows as lists in the model's column order, from records ({"column": value, ...}, one per row)."""
    if feature_names is None:
        raise InvalidInput("rows given as objects need the names of the model's columns, and this model was fitted "
                           "without them: send each row as a list of numbers")
    wanted = set(feature_names)
    rows = []
    for index, record in enumerate(records):
        if record.keys() != wanted:
            missing = [name for name in feature_names if name not in record]
            extra = [name for name in record if name not in wanted]
            said = ([f"lacks {_some(missing)}"] if missing else []) \
                + ([f"has {_some(extra)}, not a column of the model"] if extra else [])
            raise InvalidInput(f'row {index} of "data" ' + " and ".join(said))
        rows.append([record[name] for name in feature_names])
    return rows


SPLIT_KEYS = {"columns", "data", "index", "index_names", "column_names"}  # pandas' "split" and "tight" forms


def _split_rows(split):
    """Rows as lists in the model's column order, from pandas' split form: {"columns": [...], "data": [[...], ...]}
    (its "index" is ignored)."""
    if feature_names is None:
        raise InvalidInput("a split table needs the names of the model's columns, and this model was fitted without "
                           "them: send each row as a list of numbers")
    columns, rows = split.get("columns"), split.get("data")
    if not isinstance(columns, list) or not all(isinstance(name, str) for name in columns) or not isinstance(rows, list):
        raise InvalidInput('a table in "data" must be pandas\' split form: {"columns": ["name", ...], '
                           '"data": [[...], ...]}')
    if set(split) - SPLIT_KEYS:
        raise InvalidInput(f'a split table has only {", ".join(sorted(SPLIT_KEYS))}; not '
                           + _some(sorted(set(split) - SPLIT_KEYS)))
    if len(set(columns)) != len(columns):
        raise InvalidInput(f'"columns" names {_some([n for n in columns if columns.count(n) > 1][:1])} twice')
    wanted = set(feature_names)
    if set(columns) != wanted:
        missing = [name for name in feature_names if name not in columns]
        extra = [name for name in columns if name not in wanted]
        raise InvalidInput('"columns" ' + " and ".join(([f"lacks {_some(missing)}"] if missing else [])
                                                        + ([f"has {_some(extra)}, not a column of the model"]
                                                           if extra else [])))
    order = [columns.index(name) for name in feature_names]
    for index, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(columns):
            raise InvalidInput(f'row {index} of the split table must be a list of {len(columns)} values, one per column')
    return [[row[k] for k in order] for row in rows]


def _some(names):
    """'"a", "b", "c" and 4 more' for a message."""
    shown = ", ".join(orjson.dumps(name).decode() for name in names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def run_frame(rows, proba=False):
    """Rows of the model's columns in its order (lists), with category names in the columns its pipeline encodes,
    scored as a DataFrame (what a ColumnTransformer that picks columns by name takes)."""
    import pandas as pd

    names, encoded = feature_names, categories
    if names is None or encoded is None:
        raise InvalidInput("this model takes no text: send rows of numbers")
    if len(rows) * len(names) > MAX_FRAME_VALUES:
        raise TooManyValues(f"{len(rows):,} rows of {len(names)} values with text among them: send at most "
                            f"{MAX_FRAME_VALUES // len(names):,} rows a request to this model")
    if proba and not callable(getattr(model, "predict_proba", None)):
        raise InvalidInput(f"this model ({type(model).__name__}) has no predict_proba: ask without proba")
    for index, row in enumerate(rows):
        if len(row) != len(names):
            raise InvalidInput(f'row {index} of "data" has {len(row)} values; the model takes {len(names)}: '
                               + _some(names))
    columns = {}
    for j, name in enumerate(names):
        values = [row[j] for row in rows]
        known = encoded.get(name)
        if known is None:
            for index, value in enumerate(values):
                if type(value) not in NUMBER_TYPES:
                    raise InvalidInput(f'column "{name}" takes numbers; row {index} has '
                                       f'{orjson.dumps(value).decode()[:40]}')
            columns[name] = np.asarray(values, dtype=np.float64)
            if not np.isfinite(columns[name]).all() or np.abs(columns[name]).max() > FLOAT32_MAX:
                raise InvalidInput(f'column "{name}" takes finite numbers within ±3.4e38')
        else:
            allowed = set(known)
            for index, value in enumerate(values):
                if not isinstance(value, str) or value not in allowed:
                    raise InvalidInput(f'column "{name}", row {index}: {orjson.dumps(value).decode()[:40]} is not one of '
                                       f"the model's categories ({_some(known)})")
            columns[name] = np.asarray(values, dtype=object)
    frame = pd.DataFrame(columns)
    try:
        if not proba:
            return _serializable(_named(model.predict(frame)))
        probabilities = model.predict_proba(frame)
    except (TypeError, ValueError) as e:  # what the model's own checks say of these rows
        raise InvalidInput(f"the model cannot score these rows: {e}") from None
    labels = np.asarray(model.classes_)[probabilities.argmax(axis=1)] if argmax_is_predict else model.predict(frame)
    return {"predictions": _serializable(_named(labels)), "probabilities": probabilities, "classes": classes}


def run_array(X, proba=False):
    if categories:
        raise InvalidInput(f"this model takes text in {_some(list(categories))}: send rows as objects of its columns, "
                           '{"data": [{"' + next(iter(categories)) + '": "' + categories[next(iter(categories))][0]
                           + '", ...}]}, or as a split table')
    X = np.asarray(X)
    if X.ndim == 1 and n_features is not None and X.shape[0] == n_features:
        X = X[None, :]
    if X.ndim != 2 or X.shape[0] == 0:
        raise InvalidInput(f"expected a non-empty 2-D batch (rows x features), got shape {list(X.shape)}")
    if n_features is not None and X.shape[1] != n_features:
        raise InvalidInput(f"each row must have {n_features} values, got {X.shape[1]}")
    if X.dtype == np.uint8:
        X = X.astype(np.float32) / np.float32(255.0)
    elif X.dtype.kind not in "iuf":  # complex, bool, text, dates, records, objects
        raise InvalidInput(f"values must be real numbers (float32, float64, integers or uint8 pixels), got dtype {X.dtype}")
    if not np.isfinite(X).all():
        raise InvalidInput("values must be finite numbers within ±3.4e38 (float32; no NaN or infinity)")
    if not proba:
        return _serializable(_named(_predict(X)))
    if not callable(getattr(model, "predict_proba", None)):
        raise InvalidInput(f"this model ({type(model).__name__}) has no predict_proba: ask without proba")
    probabilities = _checked(model.predict_proba, X)
    # The labels are predict's with or without proba: the most probable class is not always predict's
    # (an SVC's Platt scaling, SGDClassifier's modified Huber loss)
    labels = np.asarray(model.classes_)[probabilities.argmax(axis=1)] if argmax_is_predict else _predict(X)
    return {"predictions": _serializable(_named(labels)), "probabilities": probabilities, "classes": classes}


def _predict(X):
    return fast_predict(X) if fast_predict is not None and X.dtype in FAST_DTYPES else _checked(model.predict, X)


def _checked(method, X):
    """`method(X)` with scikit-learn told (on this thread, for this call) that X was checked above:
    finite, so its own scan for NaN and infinity is skipped, and no parameter validation. What
    sklearn.config_context does, without its generator (half the cost per call)."""
    before = sklearn.get_config()
    sklearn.set_config(assume_finite=True, skip_parameter_validation=True)
    try:
        return method(X)
    finally:
        sklearn.set_config(**before)


def _linear_predict(fitted):
    """`fitted.predict` without scikit-learn's per-call machinery, for its linear classifiers
    (LogisticRegression, LinearSVC, SGDClassifier, Perceptron, ...): their decision_function and predict
    do this arithmetic on the same arrays, so the labels are the same, but for one row ~5 µs instead of
    ~180 µs, nearly all of which is input checks and array-API and dataframe dispatch that run_array's
    own checks make redundant. None for any other model, for a subclass that changes either method, for
    sparse coefficients, and when a check on probe rows finds a label that differs from predict's."""
    try:
        from sklearn.linear_model._base import LinearClassifierMixin
    except ImportError:  # another scikit-learn layout: its own predict then
        return None
    kind = type(fitted)
    coef, intercept, labels = (getattr(fitted, name, None) for name in ("coef_", "intercept_", "classes_"))
    if not (isinstance(fitted, LinearClassifierMixin) and kind.predict is LinearClassifierMixin.predict
            and kind.decision_function is LinearClassifierMixin.decision_function
            and isinstance(coef, np.ndarray) and coef.ndim == 2 and coef.dtype.kind == "f"
            and isinstance(labels, np.ndarray) and labels.ndim == 1):
        return None

    def predict(X):
        scores = X @ coef.T + intercept
        if scores.shape[1] == 1:  # two classes: one score, the second class where it is positive
            return labels[(scores[:, 0] > 0).astype(np.intp)]
        return labels[scores.argmax(axis=1)]

    probe = np.random.default_rng(0).random((64, coef.shape[1]), dtype=np.float32)
    try:
        agrees = all(np.array_equal(predict(X), fitted.predict(X)) for X in (probe, probe.astype(np.float64)))
    except Exception:  # the model's own predict refuses what the checks above let through
        agrees = False
    return predict if agrees else None


def _predicts_argmax_of_proba(fitted):
    """Whether `fitted.predict` is by construction the argmax of its predict_proba (a calibrated classifier,
    alone or at the end of a pipeline), so the probabilities give predict's labels without a second pass."""
    try:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.pipeline import Pipeline
    except ImportError:
        return False
    while isinstance(fitted, Pipeline):
        fitted = fitted.steps[-1][1]
    return type(fitted).predict is CalibratedClassifierCV.predict


def _serializable(labels):
    """Numeric labels as the array (the server serialises it fast); named ones (a model trained on
    "Ankle boot", ...) as a list of str, which JSON takes and a numpy string array is not."""
    labels = np.asarray(labels)
    return labels if labels.dtype.kind in "biuf" else [str(v) for v in labels.tolist()]
