"""Model metadata and status documents of the V2 and TF-Serving V1 protocols (pure rendering)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from mdserve.runtimes.base import TensorSpec

if TYPE_CHECKING:
    from mdserve.dataplane import ServedModel


def v2_metadata(served: ServedModel) -> bytes:
    """`GET /v2/models/{name}`: tensors with V2 datatypes and -1 for variable dimensions."""
    info = served.model.info

    def tensors(specs: Sequence[TensorSpec]) -> list[dict[str, Any]]:
        return [{"name": s.name, "datatype": s.datatype, "shape": list(s.shape)} for s in specs]

    return orjson.dumps(
        {
            "name": served.name,
            "versions": [served.version],
            "platform": info.format,
            "inputs": tensors(info.inputs),
            "outputs": tensors(info.outputs),
            "parameters": {"task": info.task.value, "classes": list(info.class_labels), **info.extra},
        }
    )


def v1_status(version: str, loaded: bool) -> bytes:
    """`GET /v1/models/{name}`: TF-Serving's model version status."""
    state = "AVAILABLE" if loaded else "LOADING"
    status = {"version": version, "state": state, "status": {"error_code": "OK", "error_message": ""}}
    return orjson.dumps({"model_version_status": [status]})


def v1_metadata(served: ServedModel) -> bytes:
    """`GET /v1/models/{name}/metadata`: a `serving_default` signature_def in TF-Serving's JSON shape."""
    info = served.model.info

    def tensor_info(specs: Sequence[TensorSpec]) -> dict[str, Any]:
        return {
            s.name: {"dtype": s.datatype, "tensor_shape": {"dim": [{"size": str(d)} for d in s.shape]}}
            for s in specs
        }

    signature = {
        "inputs": tensor_info(info.inputs),
        "outputs": tensor_info(info.outputs),
        "method_name": "predict",
    }
    return orjson.dumps(
        {
            "model_spec": {"name": served.name, "signature_name": "", "version": served.version},
            "metadata": {"signature_def": {"signature_def": {"serving_default": signature}}},
        }
    )
