from __future__ import annotations

import pytest

from mdserve.settings import SettingsError, settings_from_env

pytestmark = pytest.mark.unit

BASE = {"MDSERVE_MODEL_NAME": "iris", "MDSERVE_MODEL_URI": "/models/iris"}


def test_defaults_follow_the_contract() -> None:
    settings = settings_from_env(BASE)
    assert (settings.model_format, settings.model_version, settings.quantization) == ("auto", "1", "none")
    assert (settings.variant, settings.revision, settings.port, settings.host) == (
        "default",
        "0",
        8080,
        "0.0.0.0",
    )
    assert not settings.trust_pickle


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ({"MDSERVE_MODEL_NAME": ""}, "MDSERVE_MODEL_NAME is required"),
        ({"MDSERVE_MODEL_URI": ""}, "MDSERVE_MODEL_URI is required"),
        ({"MDSERVE_MODEL_FORMAT": "pytorch"}, "MDSERVE_MODEL_FORMAT"),
        ({"MDSERVE_HTTP_PORT": "http"}, "MDSERVE_HTTP_PORT"),
        ({"MDSERVE_MODEL_SHA256": "abc"}, "64 hex"),
        ({"MDSERVE_TRUST_PICKLE": "maybe"}, "MDSERVE_TRUST_PICKLE"),
        ({"MDSERVE_QUANTIZATION": "int8"}, "MDSERVE_QUANTIZATION_SAMPLE"),
        ({"MDSERVE_MAX_REQUEST_BYTES": "10"}, "at least"),
    ],
)
def test_bad_values_name_the_variable(override: dict[str, str], fragment: str) -> None:
    with pytest.raises(SettingsError, match=fragment):
        settings_from_env({**BASE, **override})
