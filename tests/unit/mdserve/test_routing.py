from __future__ import annotations

import pytest

from mdserve.routing import Route, route

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v2/health/live", Route("live", "GET", "other")),
        ("/v2/health/ready", Route("ready", "GET", "other")),
        ("/metrics", Route("metrics", "GET", "other")),
        ("/v2/models/iris", Route("v2_metadata", "GET", "v2", "iris")),
        ("/v2/models/iris/ready", Route("v2_model_ready", "GET", "v2", "iris")),
        ("/v2/models/iris/infer", Route("v2_infer", "POST", "v2", "iris")),
        ("/v2/models/iris/versions/3/infer", Route("v2_infer", "POST", "v2", "iris", "3")),
        ("/v2/models/iris/versions/3", Route("v2_metadata", "GET", "v2", "iris", "3")),
        ("/v2/models/iris/feedback", Route("feedback", "POST", "feedback", "iris")),
        ("/v1/models/iris", Route("v1_status", "GET", "v1", "iris")),
        ("/v1/models/iris/metadata", Route("v1_metadata", "GET", "v1", "iris")),
        ("/v1/models/iris:predict", Route("v1_predict", "POST", "v1", "iris")),
        ("/v1/models/iris/versions/2:predict", Route("v1_predict", "POST", "v1", "iris", "2")),
        ("/v1/models/iris/versions/2", Route("v1_status", "GET", "v1", "iris", "2")),
        ("/v1/models/iris:feedback", Route("feedback", "POST", "feedback", "iris")),
    ],
)
def test_known_paths(path: str, expected: Route) -> None:
    assert route(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/v3/models/x",
        "/v2/models/",
        "/v2/models/x/explain",
        "/v1/models/x:classify",
        "/v1/models/a:b:c",
        "/v2/models/x/versions//infer",
        "/v1/models/x/other",
    ],
)
def test_unknown_paths(path: str) -> None:
    assert route(path) is None
