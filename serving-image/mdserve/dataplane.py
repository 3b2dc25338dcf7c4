"""Transport-agnostic inference: decoded protocol requests → validated numpy → model → encoded
response, plus the model-aware bookkeeping (predicted classes, feedback). Raises typed errors."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from mdserve import codec, views
from mdserve.batching import MicroBatcher
from mdserve.errors import (
    MissingField,
    ModelError,
    ModelRejectedInput,
    NotReady,
    UnknownModel,
    UnknownOutput,
    UnknownRequestId,
    WrongDatatype,
    WrongShape,
)
from mdserve.feedback import FeedbackStore, parse_feedback, score
from mdserve.metrics import ServerMetrics
from mdserve.runtimes.base import Array, Model, Task, TensorSpec, numpy_dtype

log = logging.getLogger("mdserve.dataplane")

#: A model whose warm-up call takes longer than this always runs in the thread pool.
INLINE_MAX_SECONDS = 0.002
_DEFAULT_SIGNATURES = ("", "serving_default", "predict")


@dataclass(frozen=True)
class ServedModel:
    """The one model this server serves, with its identity."""

    name: str
    """Model name in URLs."""
    version: str
    """Model version in URLs and labels."""
    model: Model
    """The loaded runtime."""
    inline: bool
    """Small batches run directly on the event loop (measured fast at warm-up)."""


def _conform(spec: TensorSpec, array: Array, label: str) -> Array:
    """Check rank and fixed dimensions against the model's signature and convert to its dtype."""
    if len(spec.shape) != array.ndim:
        raise WrongShape(
            f"{label} has shape {list(array.shape)}, the model expects {list(spec.shape)} (-1 = any)"
        )
    for got, want in zip(array.shape, spec.shape, strict=True):
        if want >= 0 and got != want:
            raise WrongShape(
                f"{label} has shape {list(array.shape)}, the model expects {list(spec.shape)} (-1 = any)"
            )
    if array.ndim and array.shape[0] == 0:
        raise WrongShape(f"{label} has an empty batch")
    target = numpy_dtype(spec.datatype)
    if array.dtype == target:
        return array
    if target.kind == "O" or array.dtype.kind == "O":
        raise WrongDatatype(f"{label} has datatype {array.dtype.name}, the model expects {spec.datatype}")
    if target.kind in "iub" and array.dtype.kind == "f":
        raise WrongDatatype(f"{label} holds floats, the model expects {spec.datatype}")
    return array.astype(target)


def bind_inputs(specs: Sequence[TensorSpec], given: Mapping[str, Array]) -> dict[str, Array]:
    """Match request tensors to model inputs. A single-input model takes a single tensor of any
    name (clients rarely know the name sklearn models get); otherwise names must match."""
    if len(specs) == 1 and len(given) == 1:
        ((name, array),) = given.items()
        spec = specs[0]
        return {spec.name: _conform(spec, array, f"input '{name:.64}'")}
    expected = {spec.name for spec in specs}
    unknown = sorted(set(given) - expected)
    if unknown:
        raise WrongShape(f"unknown input {unknown[0]!r:.64}; the model's inputs are {sorted(expected)}")
    bound = {}
    for spec in specs:
        if spec.name not in given:
            raise MissingField(
                f"model input {spec.name!r} is missing; the model's inputs are {sorted(expected)}"
            )
        bound[spec.name] = _conform(spec, given[spec.name], f"input '{spec.name}'")
    return bound


class DataPlane:
    """Serves one model (the server is one model per process, like a KServe predictor)."""

    def __init__(
        self,
        model_name: str,
        model_version: str,
        metrics: ServerMetrics,
        feedback: FeedbackStore,
        inline_max_rows: int = 64,
        predict_threads: int = 2,
        micro_batching: bool = True,
    ) -> None:
        self.model_name = model_name
        self.model_version = model_version
        self.metrics = metrics
        self.feedback_store = feedback
        self.inline_max_rows = inline_max_rows
        self.micro_batching = micro_batching
        self.executor = ThreadPoolExecutor(max_workers=predict_threads, thread_name_prefix="predict")
        self.served: ServedModel | None = None
        self.batcher: MicroBatcher | None = None
        self.draining = False

    # ---- lifecycle -------------------------------------------------------------------------
    def install(self, model: Model) -> ServedModel:
        """Warm the model up (raises on failure) and make it the served one; readiness follows."""
        warm = model.warmup_inputs()
        timings = []
        for _ in range(5):
            start = time.perf_counter()
            model.predict(warm, [spec.name for spec in model.info.outputs])
            timings.append(time.perf_counter() - start)
        inline = float(np.median(timings)) <= INLINE_MAX_SECONDS
        self.served = ServedModel(self.model_name, self.model_version, model, inline)
        self.batcher = MicroBatcher(model.predict, max_rows=max(self.inline_max_rows, 1) * 4)
        if model.info.task is Task.CLASSIFICATION:
            self.metrics.declare_classes(model.info.class_labels)
        log.info(
            "warm-up done: median %.3f ms, %s",
            1000 * float(np.median(timings)),
            "small batches run inline" if inline else "predictions run in threads",
        )
        return self.served

    @property
    def ready(self) -> bool:
        return self.served is not None and not self.draining

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    # ---- helpers ---------------------------------------------------------------------------
    def _served(self, name: str, version: str | None) -> ServedModel:
        if name != self.model_name:
            raise UnknownModel(f"unknown model {name!r:.64}; this server serves {self.model_name!r}")
        if version is not None and version != self.model_version:
            raise UnknownModel(
                f"model {name!r} has no version {version!r:.32}; the served version is {self.model_version!r}"
            )
        if self.served is None:
            raise NotReady(f"model {name!r} is still loading")
        return self.served

    async def _predict(
        self, served: ServedModel, inputs: dict[str, Array], outputs: list[str]
    ) -> dict[str, Array]:
        rows = next(iter(inputs.values())).shape[0] if inputs else 0
        model = served.model
        try:
            if served.inline and rows <= self.inline_max_rows:
                if self.batcher is not None and self.micro_batching:
                    return await self.batcher.submit(inputs, outputs)
                return model.predict(inputs, outputs)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.executor, model.predict, inputs, outputs)
        except (ValueError, TypeError) as exc:
            raise ModelRejectedInput(f"the model rejected the input: {exc}") from None
        except Exception as exc:
            log.exception("model failed on valid input")
            raise ModelError(f"the model failed: {type(exc).__name__}") from exc

    def _record(self, served: ServedModel, request_id: str, results: Mapping[str, Array]) -> None:
        targets = served.model.targets(results)
        if targets is None:
            return
        if served.model.info.task is Task.CLASSIFICATION:
            self.metrics.observe_classes(targets)
        elif served.model.info.task is Task.REGRESSION:
            self.metrics.observe_values(targets)
        self.feedback_store.remember(request_id, targets)

    def _record_feedback_alias(self, served: ServedModel, alias: str, results: Mapping[str, Array]) -> None:
        targets = served.model.targets(results)
        if targets is not None:
            self.feedback_store.remember(alias[:128], targets)

    def _output_names(self, served: ServedModel, requested: Sequence[str]) -> list[str]:
        available = {spec.name for spec in served.model.info.outputs}
        for name in requested:
            if name not in available:
                raise UnknownOutput(
                    f"unknown output {name!r:.64}; the model's outputs are {sorted(available)}"
                )
        return list(requested) or list(served.model.info.default_outputs)

    # ---- V2 ----------------------------------------------------------------------------------
    async def infer_v2(
        self, name: str, version: str | None, body: bytes, json_length: int | None, request_id: str
    ) -> tuple[bytes, int | None]:
        served = self._served(name, version)
        request = codec.decode_v2_request(body, json_length)
        inputs = bind_inputs(served.model.info.inputs, request.inputs)
        wanted = self._output_names(served, [o.name for o in request.outputs])
        # Compute the primary output too: metrics and feedback need it even if the client does not.
        compute = list(dict.fromkeys([*wanted, *served.model.info.default_outputs]))
        results = await self._predict(served, inputs, compute)
        self._record(served, request_id, results)
        if request.id and request.id != request_id:
            # Clients such as tritonclient put their id in the body: feedback may use either.
            self._record_feedback_alias(served, request.id, results)
        binary = {o.name: o.binary for o in request.outputs}
        if not request.outputs:
            binary = dict.fromkeys(wanted, request.binary_output_default)
        return codec.encode_v2_response(
            served.name, served.version, request.id or request_id, {n: results[n] for n in wanted}, binary
        )

    def metadata_v2(self, name: str, version: str | None) -> bytes:
        return views.v2_metadata(self._served(name, version))

    def model_ready(self, name: str, version: str | None) -> bool:
        self._served(name, version)
        return self.ready

    # ---- V1 (TF-Serving) ------------------------------------------------------------------------
    async def predict_v1(self, name: str, version: str | None, body: bytes, request_id: str) -> bytes:
        served = self._served(name, version)
        request = codec.decode_v1_request(body)
        specs = served.model.info.inputs
        by_name = {spec.name: spec for spec in specs}
        arrays: dict[str, Array] = {}
        for input_name, raw in request.inputs.items():
            spec = by_name.get(input_name) or (specs[0] if len(specs) == 1 else None)
            if spec is None:
                raise WrongShape(
                    f"input {input_name!r:.64} does not name a model input; "
                    f"the model's inputs are {sorted(by_name)}"
                )
            arrays[input_name or spec.name] = codec.json_to_array(raw, spec.datatype, f"input '{spec.name}'")
        inputs = bind_inputs(specs, arrays)
        signature = request.signature_name
        if signature in _DEFAULT_SIGNATURES:
            wanted = list(served.model.info.default_outputs)
        else:
            wanted = self._output_names(served, [signature])
        compute = list(dict.fromkeys([*wanted, *served.model.info.default_outputs]))
        results = await self._predict(served, inputs, compute)
        self._record(served, request_id, results)
        return codec.encode_v1_response({n: results[n] for n in wanted}, request.columnar)

    def status_v1(self, name: str, version: str | None) -> bytes:
        if name != self.model_name or (version is not None and version != self.model_version):
            self._served(name, version)  # raises the precise 404
        return views.v1_status(self.model_version, loaded=self.served is not None)

    def metadata_v1(self, name: str, version: str | None) -> bytes:
        return views.v1_metadata(self._served(name, version))

    # ---- feedback ----------------------------------------------------------------------------
    def feedback(self, name: str, version: str | None, body: bytes) -> bytes:
        served = self._served(name, version)
        payload = codec.parse_json(body)
        items = parse_feedback(payload)
        task = served.model.info.task
        taken = [(item, self.feedback_store.take(item.request_id)) for item in items]
        try:
            scores = [
                (item, score(task, predicted, item.truth, item.request_id) if predicted is not None else None)
                for item, predicted in taken
            ]
        except Exception:
            # Nothing is counted from a partly invalid request: put the predictions back.
            for item, predicted in taken:
                if predicted is not None:
                    self.feedback_store.remember(item.request_id, predicted)
            raise
        results = []
        for item, result in scores:
            if result is None:
                results.append({"request_id": item.request_id, "status": "unknown"})
                continue
            self.metrics.observe_score(result)
            entry: dict[str, Any] = {"request_id": item.request_id, "status": "scored"}
            if task is Task.CLASSIFICATION:
                entry.update(correct=result.correct, incorrect=result.incorrect)
            else:
                entry.update(abs_error=result.abs_error, squared_error=result.squared_error)
            results.append(entry)
        # A list answers per item even with one item: the router splits lists by variant and
        # merges the answers, so a one-item part must not turn the whole request into a 404.
        if not isinstance(payload, list) and results[0]["status"] == "unknown":
            raise UnknownRequestId(
                f"request id {items[0].request_id!r:.64} is unknown: never seen, already scored, "
                f"or older than the last {self.feedback_store.capacity} requests"
            )
        return orjson.dumps({"results": results})
