"""Work queue, settings and model checks (threads and a loopback HTTP server, no cluster)."""

from __future__ import annotations

import argparse
import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from modeldeploy.api.spec import parse_spec
from modeldeploy.modelcheck import UriChecker, implied_format, static_problems
from modeldeploy.render.variants import resolve
from modeldeploy.settings import Settings, add_flags, from_env, with_flags
from modeldeploy.workqueue import WorkQueue
from tests.unit.modeldeploy.md_helpers import BASIC, IMAGE

pytestmark = pytest.mark.unit


def test_queue_deduplicates_and_never_hands_out_a_key_twice() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert len(q) == 2
    assert q.get(timeout=1) == "a"
    q.add("a")  # arrives while "a" is being processed
    assert q.get(timeout=1) == "b"
    assert q.get(timeout=0.05) is None, "a is still being processed"
    q.done("a")
    assert q.get(timeout=1) == "a", "the event that arrived meanwhile is not lost"


def test_queue_retry_backs_off_exponentially() -> None:
    q: WorkQueue[str] = WorkQueue(base_delay=0.05, max_delay=0.2)
    assert [q.retry("k") for _ in range(4)] == [0.05, 0.1, 0.2, 0.2]
    q.forget("k")
    assert q.retry("k") == 0.05


def test_queue_add_after() -> None:
    q: WorkQueue[str] = WorkQueue()
    start = time.monotonic()
    q.add_after("k", 0.2)
    assert q.get(timeout=0.05) is None
    assert q.get(timeout=5) == "k" and time.monotonic() - start >= 0.2


def test_queue_shutdown_wakes_workers() -> None:
    q: WorkQueue[str] = WorkQueue()
    got: list[str | None] = []
    t = threading.Thread(target=lambda: got.append(q.get()))
    t.start()
    q.shutdown()
    t.join(5)
    assert got == [None]


def test_settings_from_env_and_flags() -> None:
    s = from_env(
        {
            "MODELDEPLOY_NAMESPACES": "a, b,",
            "MODELDEPLOY_HEALTH_PORT": "1234",
            "MODELDEPLOY_CHECK_MODEL_URI": "false",
            "MODELDEPLOY_FUTURE_THING": "x",
        }
    )
    assert s.namespaces == ("a", "b") and s.health_port == 1234 and s.check_model_uri is False
    assert s.extra == {"MODELDEPLOY_FUTURE_THING": "x"} and s.serving_image == Settings().serving_image
    parser = argparse.ArgumentParser()
    add_flags(parser)
    s2 = with_flags(s, parser.parse_args(["--serving-image", "img:2", "--workers", "2"]))
    assert (s2.serving_image, s2.workers, s2.health_port) == ("img:2", 2, 1234)
    with pytest.raises(ValueError, match="json or text"):
        from_env({"MODELDEPLOY_LOG_FORMAT": "xml"})


def _variants(spec: dict) -> list:  # type: ignore[type-arg]
    return resolve("m", parse_spec(spec), IMAGE)


def test_static_problems() -> None:
    assert static_problems(_variants(BASIC)) is None
    s3 = static_problems(_variants({"model": {"name": "m", "uri": "s3://bucket/m.onnx"}}))
    assert s3 is not None and s3.reason == "UnsupportedModelURI" and "spec.model.uri" in s3.message
    mismatch = static_problems(
        _variants({"model": {"name": "m", "uri": "/m/model.onnx", "format": "sklearn"}})
    )
    assert mismatch is not None and "spec.model.format" in mismatch.message
    # mdserve quantizes sklearn through ONNX (dynamic/int8), not to float16.
    assert static_problems(_variants({**BASIC, "variants": [{"name": "q", "quantization": "int8"}]})) is None
    quant = static_problems(_variants({**BASIC, "variants": [{"name": "q", "quantization": "float16"}]}))
    assert quant is not None and quant.reason == "InvalidSpec" and "spec.variants[q]" in quant.message
    assert "float16" in quant.message
    # an already converted artifact is not quantized again (mdserve refuses it at start-up)
    onnx = {"model": {"name": "m", "uri": "/m/model.onnx"},
            "variants": [{"name": "q", "quantization": "int8"}]}
    again = static_problems(_variants(onnx))
    assert again is not None and "quantization int8 is not supported for onnx" in again.message
    assert implied_format("https://x/model.tflite?sig=1") == "tflite" and implied_format("/saved/") is None


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        self.send_response(200 if self.path == "/ok.joblib" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def model_store() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_uri_checker_against_a_real_server(model_store: str) -> None:
    checker = UriChecker(timeout=5)
    assert checker.check(f"{model_store}/ok.joblib") is None
    error = checker.check(f"{model_store}/missing.joblib")
    assert error is not None and "404" in error
    assert checker.check("/path/in/image") is None
    variants = _variants({"model": {"name": "m", "uri": f"{model_store}/missing.joblib"}})
    problem = checker.problem(variants)
    assert (
        problem is not None and problem.reason == "ModelUnavailable" and "spec.model.uri" in problem.message
    )


def test_namespace_patterns_follow_kopf() -> None:
    from modeldeploy.controller import watched

    assert watched("anything", ())
    assert watched("t-1", ("t-*",)) and not watched("mc-1", ("t-*",))
    assert watched("prod", ("!kube-*",)) and not watched("kube-system", ("!kube-*",))
    assert watched("a", ("a", "b")) and not watched("c", ("a", "b"))
