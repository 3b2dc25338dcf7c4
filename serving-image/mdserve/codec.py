"""Wire formats → numpy and back: Open Inference Protocol V2 (JSON and the binary tensor extension)
and TensorFlow-Serving V1. Pure functions; every malformed input raises a typed 4xx error."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from mdserve.errors import BadJson, BadRequest, MissingField, WrongDatatype, WrongShape
from mdserve.runtimes.base import V2_DATATYPES, Array, numpy_dtype, v2_datatype

#: Which inferred numpy kinds may be converted to each target kind without losing meaning.
_COMPATIBLE_KINDS = {"f": "biuf", "i": "biu", "u": "biu", "b": "b"}


@dataclass(frozen=True)
class RequestedOutput:
    """One entry of V2 `outputs`: a name and whether the client wants it as binary data."""

    name: str
    """Output tensor name."""
    binary: bool
    """Return the tensor in the binary tensor extension instead of JSON `data`."""


@dataclass(frozen=True)
class V2Request:
    """A decoded V2 inference request."""

    id: str | None
    """Client-supplied request id (`id` field), echoed in the response."""
    inputs: dict[str, Array]
    """Input tensors by name, already shaped."""
    outputs: tuple[RequestedOutput, ...]
    """Requested outputs; empty means the model's defaults."""
    binary_output_default: bool
    """`parameters.binary_data_output`: return outputs not named in `outputs` as binary."""


@dataclass(frozen=True)
class V1Request:
    """A decoded TF-Serving V1 predict request; unnamed inputs use the key `""`."""

    inputs: dict[str, Any]
    """Raw (still JSON) input values by name; `""` for a single unnamed input."""
    columnar: bool
    """True for the `inputs` form (answered with `outputs`), False for `instances` (`predictions`)."""
    signature_name: str
    """`signature_name`, empty when absent; sklearn models accept `predict_proba`."""


def parse_json(body: bytes) -> Any:
    """Parse a JSON body or raise `BadJson` with the parser's position message."""
    if not body:
        raise BadJson("request body is empty; expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadJson(f"request body is not valid JSON: {exc}") from None


def _shape_of(raw: Any, where: str) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(type(d) is int and d >= 0 for d in raw):
        raise WrongShape(f"{where}.shape must be a list of non-negative integers, got {raw!r:.80}")
    return tuple(raw)


def json_to_array(data: Any, datatype: str, where: str) -> Array:
    """Convert JSON data (flat or nested lists, or a scalar) to an array of the V2 `datatype`,
    refusing values that would change meaning (floats into integer tensors, strings into numbers)."""
    target = numpy_dtype(datatype)
    if datatype == "BYTES":
        array = np.asarray(data, dtype=object)
        for item in array.reshape(-1):
            if not isinstance(item, str):
                raise WrongDatatype(f"{where} has datatype BYTES but holds {type(item).__name__} values")
        return array
    try:
        array = np.asarray(data)
    except (ValueError, OverflowError):
        raise WrongShape(f"{where} is ragged: nested lists must have equal lengths") from None
    if array.size == 0:
        return array.astype(target)
    kind = array.dtype.kind
    if kind == "O":
        raise WrongShape(f"{where} is ragged, mixes types or holds numbers out of range")
    if kind in "US":
        raise WrongDatatype(f"{where} has datatype {datatype} but holds strings")
    if kind not in _COMPATIBLE_KINDS[target.kind]:
        raise WrongDatatype(f"{where} has datatype {datatype} but holds {array.dtype.name} values")
    if target.kind in "iu" and kind in "iu":
        limits = np.iinfo(target)  # type: ignore[type-var]
        if array.min() < limits.min or array.max() > limits.max:
            raise WrongDatatype(f"{where} holds values outside the {datatype} range")
    if target.kind == "f" and kind == "f" and target.itemsize < array.dtype.itemsize:
        with np.errstate(over="ignore"):
            narrowed = array.astype(target)
        if np.isinf(narrowed).any():
            raise WrongDatatype(f"{where} holds values outside the {datatype} range")
        return narrowed
    return array.astype(target, copy=False)


def _binary_to_array(chunk: bytes, datatype: str, shape: tuple[int, ...], where: str) -> Array:
    count = math.prod(shape)
    if datatype == "BYTES":
        items: list[bytes] = []
        offset = 0
        while offset < len(chunk):
            if offset + 4 > len(chunk):
                raise WrongShape(f"{where}: truncated BYTES element length")
            size = int.from_bytes(chunk[offset : offset + 4], "little")
            offset += 4
            items.append(chunk[offset : offset + size])
            offset += size
        if len(items) != count or offset != len(chunk):
            raise WrongShape(f"{where}: shape {list(shape)} needs {count} BYTES elements, got {len(items)}")
        return np.asarray(items, dtype=object).reshape(shape)
    dtype = numpy_dtype(datatype).newbyteorder("<")
    if len(chunk) != count * dtype.itemsize:
        raise WrongShape(
            f"{where}: shape {list(shape)} of {datatype} needs {count * dtype.itemsize} bytes, "
            f"got {len(chunk)}"
        )
    return np.frombuffer(chunk, dtype=dtype).reshape(shape)


def decode_v2_request(body: bytes, json_length: int | None = None) -> V2Request:
    """Decode a V2 infer body. `json_length` is the `Inference-Header-Content-Length` header of the
    binary tensor extension: the JSON header is that long and binary tensors follow it."""
    if json_length is not None:
        if json_length < 0 or json_length > len(body):
            raise BadRequest(
                f"Inference-Header-Content-Length {json_length} exceeds the body ({len(body)} bytes)"
            )
        header, binary = body[:json_length], memoryview(body)[json_length:]
    else:
        header, binary = body, memoryview(b"")
    request = parse_json(header)
    if not isinstance(request, dict):
        raise BadRequest("request body must be a JSON object with an 'inputs' list")
    raw_inputs = request.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise MissingField("'inputs' must be a non-empty list of tensors")
    inputs: dict[str, Array] = {}
    offset = 0
    for index, raw in enumerate(raw_inputs):
        where = f"inputs[{index}]"
        if not isinstance(raw, dict):
            raise BadRequest(f"{where} must be an object with name, shape, datatype and data")
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise MissingField(f"{where}.name is required")
        where = f"input '{name:.64}'"
        if name in inputs:
            raise BadRequest(f"{where} appears twice")
        if "shape" not in raw:
            raise MissingField(f"{where}: 'shape' is required")
        shape = _shape_of(raw["shape"], where)
        datatype = raw.get("datatype")
        if datatype not in V2_DATATYPES:
            raise WrongDatatype(f"{where}: datatype {datatype!r:.32} is not one of {', '.join(V2_DATATYPES)}")
        parameters = raw.get("parameters") or {}
        size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if size is not None:
            if type(size) is not int or size < 0 or offset + size > len(binary):
                raise BadRequest(f"{where}: binary_data_size {size!r:.32} does not fit the binary body")
            array = _binary_to_array(bytes(binary[offset : offset + size]), datatype, shape, where)
            offset += size
        else:
            if "data" not in raw:
                raise MissingField(f"{where}: 'data' is required")
            array = json_to_array(raw["data"], datatype, where)
            expected = math.prod(shape)
            if array.size != expected:
                raise WrongShape(
                    f"{where}: shape {list(shape)} needs {expected} values, data has {array.size}"
                )
            array = array.reshape(shape)
        inputs[name] = array
    if offset != len(binary):
        raise BadRequest(f"{len(binary) - offset} bytes of binary data are not claimed by any input")
    request_id = request.get("id")
    top_parameters = request.get("parameters") or {}
    binary_default = bool(isinstance(top_parameters, dict) and top_parameters.get("binary_data_output"))
    outputs: list[RequestedOutput] = []
    raw_outputs = request.get("outputs") or []
    if not isinstance(raw_outputs, list):
        raise BadRequest("'outputs' must be a list of {\"name\": ...} objects")
    for index, raw in enumerate(raw_outputs):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise MissingField(f"outputs[{index}].name is required")
        parameters = raw.get("parameters") or {}
        binary_flag = parameters.get("binary_data", binary_default) if isinstance(parameters, dict) else False
        outputs.append(RequestedOutput(raw["name"], bool(binary_flag)))
    return V2Request(
        id=request_id if isinstance(request_id, str) else None,
        inputs=inputs,
        outputs=tuple(outputs),
        binary_output_default=binary_default,
    )


def _json_data(array: Array) -> list[Any]:
    flat = array.reshape(-1)
    if flat.dtype.kind in "OS":
        return [item.decode() if isinstance(item, bytes) else str(item) for item in flat.tolist()]
    if flat.dtype.kind == "U":
        return [str(item) for item in flat.tolist()]
    return flat.tolist()  # type: ignore[no-any-return]


def _binary_data(array: Array) -> bytes:
    if array.dtype.kind in "OSU":
        parts = []
        for item in array.reshape(-1).tolist():
            raw = item if isinstance(item, bytes) else str(item).encode()
            parts.append(len(raw).to_bytes(4, "little") + raw)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def encode_v2_response(
    model_name: str,
    model_version: str,
    response_id: str,
    outputs: Mapping[str, Array],
    binary: Mapping[str, bool],
) -> tuple[bytes, int | None]:
    """Encode a V2 response. Returns the body and, when any output is binary, the length of the
    JSON header to send as `Inference-Header-Content-Length`."""
    tensors = []
    blobs = []
    for name, array in outputs.items():
        tensor: dict[str, Any] = {
            "name": name,
            "shape": list(array.shape),
            "datatype": v2_datatype(array.dtype),
        }
        if binary.get(name):
            blob = _binary_data(array)
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = _json_data(array)
        tensors.append(tensor)
    header = orjson.dumps(
        {"model_name": model_name, "model_version": model_version, "id": response_id, "outputs": tensors}
    )
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)


def decode_v1_request(body: bytes) -> V1Request:
    """Decode a TF-Serving V1 `:predict` body (`instances` row form or `inputs` columnar form)."""
    request = parse_json(body)
    if not isinstance(request, dict):
        raise BadRequest("request body must be a JSON object with 'instances' or 'inputs'")
    signature = request.get("signature_name", "")
    if not isinstance(signature, str):
        raise BadRequest("'signature_name' must be a string")
    has_instances, has_inputs = "instances" in request, "inputs" in request
    if has_instances == has_inputs:
        raise MissingField("request needs exactly one of 'instances' (rows) or 'inputs' (columns)")
    if has_inputs:
        raw = request["inputs"]
        if isinstance(raw, dict):
            if not raw:
                raise MissingField("'inputs' is an empty object")
            return V1Request(dict(raw), columnar=True, signature_name=signature)
        return V1Request({"": raw}, columnar=True, signature_name=signature)
    instances = request["instances"]
    if not isinstance(instances, list) or not instances:
        raise MissingField("'instances' must be a non-empty list of rows")
    if isinstance(instances[0], dict):
        names = set(instances[0])
        if not all(isinstance(row, dict) and set(row) == names for row in instances):
            raise BadRequest("every instance must be an object with the same input names")
        return V1Request(
            {name: [row[name] for row in instances] for name in instances[0]},
            columnar=False,
            signature_name=signature,
        )
    return V1Request({"": instances}, columnar=False, signature_name=signature)


def encode_v1_response(outputs: Mapping[str, Array], columnar: bool) -> bytes:
    """Encode a V1 response: `predictions` for row requests, `outputs` for columnar ones."""
    if columnar:
        if len(outputs) == 1:
            (only,) = outputs.values()
            return orjson.dumps({"outputs": _nested(only)})
        return orjson.dumps({"outputs": {name: _nested(array) for name, array in outputs.items()}})
    if len(outputs) == 1:
        (only,) = outputs.values()
        return orjson.dumps({"predictions": _nested(only)})
    columns = {name: _nested(array) for name, array in outputs.items()}
    rows = len(next(iter(columns.values())))
    return orjson.dumps(
        {"predictions": [{name: col[i] for name, col in columns.items()} for i in range(rows)]}
    )


def _nested(array: Array) -> list[Any]:
    if array.dtype.kind in "OSU":
        return np.asarray(_json_data(array), dtype=object).reshape(array.shape).tolist()  # type: ignore[no-any-return]
    return array.tolist()  # type: ignore[no-any-return]
