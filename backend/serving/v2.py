"""The Open Inference Protocol (KServe / Triton / MLServer "V2" REST) over the tutorial's scoring script.

Plain functions: request bytes in, arrays out; predictions in, response bytes out. The FastAPI routes
in v2_routes.py only decode the path and headers, and wrap what these return.

What a deployment serves, in the protocol's words:

* one model, named after the registered model ("sklearn_mnist" of "sklearn_mnist:1") with one version
  ("1"); the deployment's name is accepted in its place (an alias), the answers always use the model's.
* one input, reported as `input-0` [-1, n_features] FP32; any single input name is taken. Datatypes
  FP32, FP64 and UINT8 (pixels 0..255, scaled to 0..1 as the built-in script's run_array does). Shape
  [N, n_features], or [n_features] for one row, or [N, d1, d2, ...] whose trailing dims multiply to
  n_features (an MNIST batch as [N, 28, 28]).
* outputs `predict` (one label per row: INT64 for numeric labels, FP64 for other numbers, BYTES for
  class names such as "Ankle boot") and, where the script answers probabilities (`supports_proba`),
  `predict_proba` (FP64 [N, n_classes], in the order of the model's classes): the names of MLServer's
  scikit-learn runtime. All outputs when the request names none, else only those named. Where the
  model's classes are known (a model registered with class names: those names), the model metadata's
  outputs carry them as `"parameters": {"classes": [...]}`.
* the binary tensor data extension: an input may carry `"parameters": {"binary_data_size": n}` instead
  of `data`, its n bytes (little-endian, row-major) following the JSON header, whose length the
  `Inference-Header-Content-Length` header gives; inputs' bytes follow in the order of `inputs`. An
  output is answered as binary when its `parameters.binary_data` is true (or, for outputs not named,
  the request's `parameters.binary_data_output`); the answer is then the JSON header, then each binary
  output's bytes in order, with `Inference-Header-Content-Length` set. BYTES elements are a 4-byte
  little-endian length followed by the UTF-8 text.
* errors are `{"error": message}`: 400 for a request the protocol or the model refuses, 404 for a
  model or version not served.
"""

from __future__ import annotations

import logging
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from .answers import Answer, Refusal, answer, script_refusal
from .script import ScoringScript

log = logging.getLogger("modeldeck.serving")
SERVER_NAME = "modeldeck"
SERVER_VERSION = "1"
EXTENSIONS = ("binary_tensor_data",)
HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_TYPE = "application/octet-stream"
PLATFORM = "scikit-learn"
INPUT_NAME = "input-0"
LABEL_OUTPUT = "predict"
PROBA_OUTPUT = "predict_proba"
INPUT_DTYPES: dict[str, np.dtype[Any]] = {"FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"), "UINT8": np.dtype("u1")}
DEFAULT_VERSION = "1"

NOT_SERVED = "model {asked!r} is not served here: this server serves {served}"
NO_VERSION = "model {name!r} has no version {version!r} here: this server serves version {served!r}"
BAD_HEADER_LENGTH = ("the Inference-Header-Content-Length header must be the length in bytes of the JSON part "
                     "of the body (1..{size}), got {value!r}")
NOT_JSON = "the inference request (its JSON part) is not valid JSON: {}"
MORE_THAN_JSON = ("the body ({} bytes) goes on after its JSON part but the request has no Inference-Header-Content-Length "
                  "header saying where the JSON part ends (binary tensor data needs it)")
NOT_OBJECT = 'the inference request must be a JSON object with "inputs", got {}'
NO_INPUTS = ('the request has no inputs: send one tensor, e.g. {"inputs": [{"name": "input-0", "datatype": '
             '"FP32", "shape": [1, 784], "data": [...]}]}')
TOO_MANY_INPUTS = "this model takes one input tensor ({name}), got {count}: {names}"
BAD_INPUT = 'each input must be an object with "name" (text), "datatype" (text) and "shape" (a list), got {}'
BAD_DATATYPE = "input {name!r} has datatype {datatype!r}: this model takes FP32, FP64 or UINT8"
BAD_SHAPE = "input {name!r} has shape {shape}: a shape is a list of whole numbers >= 0"
EMPTY_BATCH = "input {name!r} has shape {shape}: it holds no rows"
SHAPE_MISMATCH = ("input {name!r} has shape {shape}: this model takes [-1, {n}] (rows of {n} values; "
                  "[{n}] for one row, or [N, ...] whose trailing dims multiply to {n})")
LENGTH_MISMATCH = "input {name!r} has shape {shape}, which holds {expected} values, but its data has {got}"
BOTH_DATA = 'input {name!r} has both "data" and a binary_data_size: send one of them'
NO_DATA = 'input {name!r} has no "data" (nor a binary_data_size parameter)'
BAD_DATA = 'the "data" of input {name!r} must be a list of numbers (nested as rows or flat): {detail}'
NOT_NUMBERS = 'the "data" of input {name!r} must be numbers, got {kind}'
NOT_UINT8 = 'the "data" of UINT8 input {name!r} must be whole numbers from 0 to 255'
NOT_FINITE = "the values of input {name!r} must be finite {datatype} numbers (no NaN or infinity)"
BAD_BINARY_SIZE = "input {name!r}: the parameter binary_data_size must be a whole number >= 0, got {value!r}"
BINARY_SIZE_MISMATCH = ("input {name!r} is {datatype} of shape {shape}, which is {expected} bytes, but its "
                        "binary_data_size says {got}")
NO_HEADER_LENGTH = ("input {name!r} has a binary_data_size but the request has no Inference-Header-Content-Length "
                    "header saying where the JSON part ends")
BINARY_SHORT = ("the body has {got} bytes after the JSON part, fewer than the inputs' binary_data_size add up to "
                "({expected})")
BINARY_LEFT = "the body has {extra} bytes after the JSON part that no input's binary_data_size accounts for"
BAD_OUTPUTS = '"outputs" must be a list of objects with a "name" (text), e.g. [{{"name": "predict"}}], got {}'
UNKNOWN_OUTPUT = "unknown output {name!r}: this model answers {available}"
NO_PROBA = ("output 'predict_proba' is not offered: this deployment's scoring script does not answer probabilities "
            "(it answers {available})")
BAD_ID = 'the request\'s "id" must be text, got {}'
BAD_FLAG = "{where} must be true or false, got {value}"
BAD_ANSWER = "the scoring script's run() returned {what}, not one label per row ({rows} rows)"


class V2Error(Refusal):
    """A request refused in the protocol's shape: answered with `status` (400 here) and {"error": message}."""

    status = 400


class ModelNotFound(V2Error):
    """404: the request names a model or a version that this server does not serve."""

    status = 404


class BadScriptAnswer(V2Error):
    """500: the script's run() answered something that is not one label per row."""

    status = 500


@dataclass(frozen=True)
class ServedModel:
    """The one model a scoring server serves, as the protocol names and describes it."""

    name: str
    version: str
    aliases: tuple[str, ...]  # other names accepted in paths (the deployment's)
    n_features: int | None
    classes: tuple[Any, ...] | None
    proba: bool  # the script answers probabilities: the output predict_proba is offered

    @property
    def outputs(self) -> tuple[str, ...]:
        return (LABEL_OUTPUT, PROBA_OUTPUT) if self.proba else (LABEL_OUTPUT,)

    @property
    def label_datatype(self) -> str:
        """The datatype of `predict`: from the model's classes; INT64 when the script does not say (the
        tutorial's digits; a script whose run() returns names still answers BYTES)."""
        if not self.classes:
            return "INT64"
        return _label_datatype(np.asarray(self.classes))


def served_model(info: dict[str, Any], script: ScoringScript) -> ServedModel:
    """The model behind `script`, named by `info["model"]` ("name:version") with `info["deployment"]`
    as an alias (either may be empty: then the other names it, or "model")."""
    model = str(info.get("model") or "")
    deployment = str(info.get("deployment") or "")
    name, _, version = model.partition(":")
    name = name or deployment or "model"
    aliases = (deployment,) if deployment and deployment != name else ()
    n_features = info.get("n_features", script.n_features)
    classes = info.get("classes", script.classes)
    return ServedModel(name=name, version=version or DEFAULT_VERSION, aliases=aliases,
                       n_features=int(n_features) if isinstance(n_features, int) and n_features > 0 else None,
                       classes=tuple(classes) if isinstance(classes, list | tuple) and classes else None,
                       proba=script.answers_proba)


def resolve(model: ServedModel, name: str, version: str | None = None) -> None:
    """Checks that a path's model name (and version, when the path has one) is the served model.

    Raises:
        ModelNotFound: another name, or another version; the message says what is served.
    """
    if name != model.name and name not in model.aliases:
        served = " or ".join(repr(n) for n in (model.name, *model.aliases))
        raise ModelNotFound(NOT_SERVED.format(asked=name, served=f"{served} (version {model.version!r})"))
    if version is not None and version != model.version:
        raise ModelNotFound(NO_VERSION.format(name=name, version=version, served=model.version))


def server_metadata() -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": list(EXTENSIONS)}


def model_metadata(model: ServedModel) -> dict[str, Any]:
    """The protocol's model metadata: name, versions, platform, inputs and outputs with shapes; where the
    model's classes are known, each output's `parameters` name them (the labels `predict` answers, in
    the order of `predict_proba`'s columns), as MLServer's tensor metadata carries parameters."""
    width = model.n_features or -1
    named = {"parameters": {"classes": list(model.classes)}} if model.classes else {}
    outputs = [{"name": LABEL_OUTPUT, "datatype": model.label_datatype, "shape": [-1], **named}]
    if model.proba:
        outputs.append({"name": PROBA_OUTPUT, "datatype": "FP64", "shape": [-1, len(model.classes or ()) or -1],
                        **named})
    return {"name": model.name, "versions": [model.version], "platform": PLATFORM,
            "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, width]}], "outputs": outputs}


def model_ready(model: ServedModel) -> dict[str, Any]:
    return {"name": model.name, "ready": True}


@dataclass(frozen=True)
class InferRequest:
    """A decoded inference request: the rows to score and the outputs to answer (name, as binary)."""

    rows: np.ndarray  # 2-D: rows x features, of the datatype sent (float32, float64 or uint8)
    outputs: tuple[tuple[str, bool], ...]
    id: str | None = None


def _header_and_binary(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    if header_length is None:
        return body, memoryview(b"")
    value = header_length.strip()
    if not value.isdigit() or not 0 < int(value) <= len(body):
        raise V2Error(BAD_HEADER_LENGTH.format(size=len(body), value=header_length[:40]))
    return body[:int(value)], memoryview(body)[int(value):]


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise V2Error(BAD_FLAG.format(where=where, value=orjson.dumps(value).decode()[:40]))
    return value


def _parameters(holder: dict[str, Any], where: str) -> dict[str, Any]:
    if "parameters" not in holder:
        return {}
    parameters = holder["parameters"]
    if not isinstance(parameters, dict):
        raise V2Error(f'"parameters" of {where} must be an object, got {orjson.dumps(parameters).decode()[:60]}')
    return parameters


def decode_request(body: bytes, header_length: str | None, model: ServedModel) -> InferRequest:
    """The rows and the wanted outputs of an inference request body (JSON, or JSON then binary tensors).

    Args:
        body: the whole request body.
        header_length: the Inference-Header-Content-Length header, None when absent.
        model: the served model (its width and outputs).

    Raises:
        V2Error: anything the protocol or this model refuses, with a message saying what arrived.
    """
    head, binary = _header_and_binary(body, header_length)
    try:
        request = orjson.loads(head)
    except orjson.JSONDecodeError as e:
        if header_length is None and "after document" in str(e):  # binary tensors, but no header saying so
            raise V2Error(MORE_THAN_JSON.format(len(body))) from None
        raise V2Error(NOT_JSON.format(e)) from None
    if not isinstance(request, dict):
        raise V2Error(NOT_OBJECT.format(orjson.dumps(request).decode()[:60]))
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise V2Error(NO_INPUTS)
    if not all(isinstance(tensor, dict) for tensor in inputs):
        raise V2Error(BAD_INPUT.format(orjson.dumps(inputs).decode()[:80]))
    if len(inputs) > 1:
        names = ", ".join(repr(tensor.get("name")) for tensor in inputs[:5])
        raise V2Error(TOO_MANY_INPUTS.format(name=INPUT_NAME, count=len(inputs), names=names))
    rows, used = _decode_input(inputs[0], binary, header_length is not None, model.n_features)
    if used < len(binary):
        raise V2Error(BINARY_LEFT.format(extra=len(binary) - used))
    request_id = request.get("id")
    if "id" in request and not isinstance(request_id, str):
        raise V2Error(BAD_ID.format(orjson.dumps(request_id).decode()[:40]))
    return InferRequest(rows=rows, outputs=_wanted_outputs(request, model), id=request_id)


def _decode_input(tensor: dict[str, Any], binary: memoryview, has_header: bool,
                  n_features: int | None) -> tuple[np.ndarray, int]:
    """(rows, bytes of `binary` used) of one request input."""
    name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
    if not isinstance(name, str) or not isinstance(datatype, str) or not isinstance(shape, list):
        raise V2Error(BAD_INPUT.format(orjson.dumps(tensor, default=str).decode()[:80]))
    dtype = INPUT_DTYPES.get(datatype)
    if dtype is None:
        raise V2Error(BAD_DATATYPE.format(name=name, datatype=datatype[:20]))
    if not shape or not all(type(d) is int and d >= 0 for d in shape):
        raise V2Error(BAD_SHAPE.format(name=name, shape=orjson.dumps(shape).decode()[:60]))
    rows_shape = _rows_shape(name, shape, n_features)
    count = math.prod(shape)
    size = _parameters(tensor, f"input {name!r}").get("binary_data_size")
    used = 0
    if size is not None:
        if "data" in tensor:
            raise V2Error(BOTH_DATA.format(name=name))
        if type(size) is not int or size < 0:
            raise V2Error(BAD_BINARY_SIZE.format(name=name, value=size))
        if not has_header:
            raise V2Error(NO_HEADER_LENGTH.format(name=name))
        if size != count * dtype.itemsize:
            raise V2Error(BINARY_SIZE_MISMATCH.format(name=name, datatype=datatype, shape=shape,
                                                      expected=count * dtype.itemsize, got=size))
        if size > len(binary):
            raise V2Error(BINARY_SHORT.format(got=len(binary), expected=size))
        flat = np.frombuffer(binary[:size], dtype=dtype)
        used = size
    elif "data" in tensor:
        flat = _json_values(name, datatype, tensor["data"])
        if flat.size != count:
            raise V2Error(LENGTH_MISMATCH.format(name=name, shape=shape, expected=count, got=flat.size))
    else:
        raise V2Error(NO_DATA.format(name=name))
    rows = flat.astype(dtype.newbyteorder("="), copy=False).reshape(rows_shape)
    if rows.dtype.kind == "f" and not np.isfinite(rows).all():
        raise V2Error(NOT_FINITE.format(name=name, datatype=datatype))
    return rows, used


def _rows_shape(name: str, shape: list[int], n_features: int | None) -> tuple[int, int]:
    if len(shape) == 1:
        if n_features is not None and shape[0] != n_features:
            raise V2Error(SHAPE_MISMATCH.format(name=name, shape=shape, n=n_features))
        rows, width = 1, shape[0]
    else:
        rows, width = shape[0], math.prod(shape[1:])
        if n_features is not None and width != n_features:
            raise V2Error(SHAPE_MISMATCH.format(name=name, shape=shape, n=n_features))
    if rows == 0 or width == 0:
        raise V2Error(EMPTY_BATCH.format(name=name, shape=shape))
    return rows, width


def _json_values(name: str, datatype: str, data: Any) -> np.ndarray:
    if not isinstance(data, list):
        raise V2Error(BAD_DATA.format(name=name, detail=f"got {orjson.dumps(data).decode()[:40]}"))
    try:
        values = np.asarray(data)
    except (ValueError, TypeError) as e:  # rows of different lengths
        raise V2Error(BAD_DATA.format(name=name, detail=str(e).split(".")[0])) from None
    if values.dtype.kind not in "iuf" or (values.dtype.kind == "f" and datatype == "UINT8"):
        kind = {"b": "true/false", "U": "text", "O": "null, text or uneven rows"}.get(values.dtype.kind,
                                                                                         str(values.dtype))
        if datatype == "UINT8" and values.dtype.kind == "f":
            raise V2Error(NOT_UINT8.format(name=name))
        raise V2Error(NOT_NUMBERS.format(name=name, kind=kind))
    if datatype == "UINT8" and values.size and (values.min() < 0 or values.max() > 255):
        raise V2Error(NOT_UINT8.format(name=name))
    with np.errstate(over="ignore"):  # a value beyond float32 becomes infinity: refused as not finite
        return values.ravel().astype(INPUT_DTYPES[datatype])


def _wanted_outputs(request: dict[str, Any], model: ServedModel) -> tuple[tuple[str, bool], ...]:
    binary_default = _flag(_parameters(request, "the request").get("binary_data_output", False),
                           "parameters.binary_data_output")
    named = request.get("outputs", [])
    if named == []:
        return tuple((name, binary_default) for name in model.outputs)
    if not isinstance(named, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in named):
        raise V2Error(BAD_OUTPUTS.format(orjson.dumps(named).decode()[:80]))
    wanted: dict[str, bool] = {}
    available = ", ".join(model.outputs)
    for output in named:
        name = output["name"]
        if name == PROBA_OUTPUT and not model.proba:
            raise V2Error(NO_PROBA.format(available=available))
        if name not in model.outputs:
            raise V2Error(UNKNOWN_OUTPUT.format(name=name[:60], available=available))
        flag = _parameters(output, f"output {name!r}").get("binary_data", binary_default)
        wanted[name] = _flag(flag, f"parameters.binary_data of output {name!r}")
    return tuple(wanted.items())


@dataclass(frozen=True)
class Prediction:
    labels: Any  # one per row, as the script returned them
    probabilities: np.ndarray | None = None


def predict(script: ScoringScript, rows: np.ndarray, proba: bool) -> Prediction:
    """Runs the script on `rows`: `run_array(rows)` (with `proba=True` when asked) where the script has
    one, else `run('{"data": [...]}')` as the tutorial's contract has it (uint8 rows scaled to 0..1
    first, as run_array would). An exception of the script propagates (the caller answers it)."""
    run_array = script.run_array
    if run_array is not None:
        if proba:
            returned = run_array(rows, proba=True)
            return Prediction(returned["predictions"], np.asarray(returned["probabilities"], dtype=np.float64))
        return Prediction(run_array(rows))
    if rows.dtype == np.uint8:
        rows = rows.astype(np.float32) / np.float32(255.0)
    payload = orjson.dumps({"data": rows}, option=orjson.OPT_SERIALIZE_NUMPY)
    returned = script.run(payload if script.accepts_bytes else payload.decode())
    if isinstance(returned, dict) and "predictions" in returned:
        returned = returned["predictions"]
    return Prediction(returned)


def _label_datatype(labels: np.ndarray) -> str:
    if labels.dtype.kind in "biu":
        return "INT64"
    if labels.dtype.kind == "f":
        return "FP64"
    return "BYTES"


def _label_tensor(labels: Any, rows: int) -> tuple[str, Any]:
    """(datatype, values) of the labels: an int64 or float64 array, or a list of str for BYTES."""
    if not isinstance(labels, list | tuple | np.ndarray):
        preview = orjson.dumps(labels, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()[:80]
        raise BadScriptAnswer(BAD_ANSWER.format(what=f"a {type(labels).__name__} ({preview})", rows=rows))
    try:
        array = np.asarray(labels)
    except ValueError:
        array = np.asarray(labels, dtype=object)
    if array.ndim != 1 or len(array) != rows:
        raise BadScriptAnswer(BAD_ANSWER.format(what=f"an array of shape {list(array.shape)}", rows=rows))
    datatype = _label_datatype(array)
    if datatype == "INT64":
        return datatype, array.astype(np.int64)
    if datatype == "FP64":
        return datatype, array.astype(np.float64)
    return datatype, [str(v) for v in array.tolist()]


def _as_bytes(datatype: str, values: Any) -> bytes:
    if datatype == "BYTES":
        parts = []
        for text in values:
            encoded = text.encode("utf-8")
            parts.append(struct.pack("<I", len(encoded)))
            parts.append(encoded)
        return b"".join(parts)
    return np.ascontiguousarray(values, dtype=np.dtype(values.dtype).newbyteorder("<")).tobytes()


def encode_response(model: ServedModel, request: InferRequest, prediction: Prediction) -> Answer:
    """The protocol's inference response: the asked outputs, each as JSON data or binary after the header."""
    rows = request.rows.shape[0]
    tensors: dict[str, tuple[str, list[int], Any]] = {}
    datatype, labels = _label_tensor(prediction.labels, rows)
    tensors[LABEL_OUTPUT] = (datatype, [rows], labels)
    if prediction.probabilities is not None:
        probabilities = np.ascontiguousarray(prediction.probabilities, dtype=np.float64)
        tensors[PROBA_OUTPUT] = ("FP64", list(probabilities.shape), probabilities)
    outputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name, binary in request.outputs:
        datatype, shape, values = tensors[name]
        output: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
        if binary:
            chunk = _as_bytes(datatype, values)
            output["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        else:
            output["data"] = values.ravel() if isinstance(values, np.ndarray) else values
        outputs.append(output)
    response: dict[str, Any] = {"model_name": model.name, "model_version": model.version}
    if request.id is not None:
        response["id"] = request.id
    response["outputs"] = outputs
    head = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return Answer(200, head, rows)
    return Answer(200, head + b"".join(chunks), rows, BINARY_TYPE, {HEADER_LENGTH: str(len(head))})


def infer(script: ScoringScript, model: ServedModel, body: bytes, header_length: str | None) -> Answer:
    """Decodes, scores and encodes one inference request. A refused request, and an exception of the
    script that carries an `http_status` in 400..499 (the built-in script's InvalidInput), answer in
    the protocol's shape; any other exception of the script propagates (the server answers 500)."""
    try:
        request = decode_request(body, header_length, model)
        wants_proba = any(name == PROBA_OUTPUT for name, _ in request.outputs)
        try:
            prediction = predict(script, request.rows, wants_proba)
        except Exception as e:
            refusal = script_refusal(e)
            if refusal is None:
                raise
            return answer(refusal, v2=True)
        return encode_response(model, request, prediction)
    except V2Error as e:
        if e.status >= 500:
            log.warning("V2 infer: %s", e)
        return answer(e, v2=True)
