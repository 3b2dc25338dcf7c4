"""Router settings: flags, environment defaults and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdserve.router.settings import SettingsError, parse_settings

pytestmark = pytest.mark.unit


def test_flags_and_env() -> None:
    s = parse_settings(
        ["--routes-file", "/tmp/r.json", "--backend-override", "stable=http://127.0.0.1:1"],
        {"MDROUTE_PORT": "9000", "MDROUTE_BACKEND_OVERRIDES": "canary=http://127.0.0.1:2, x.svc=https://h:3"},
    )
    assert s.port == 9000 and s.routes_file == Path("/tmp/r.json")
    assert s.backend_overrides == {
        "canary": "http://127.0.0.1:2",
        "x.svc": "https://h:3",
        "stable": "http://127.0.0.1:1",
    }


def test_configmap_source_from_env_with_kubeconfig_list() -> None:
    s = parse_settings([], {"MDROUTE_CONFIGMAP": "demo-routes", "KUBECONFIG": "/a/config:/b/config"})
    assert s.configmap == "demo-routes" and s.kubeconfig == Path("/a/config")


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        ([], {}, "no route source"),
        (["--routes-file", "a", "--configmap", "b"], {}, "not both"),
        (["--admin-port", "9001"], {}, "needs a token"),
        (["--routes-file", "a", "--backend-override", "stable"], {}, "name=http://host:port"),
        (["--routes-file", "a", "--poll-interval", "0"], {}, "poll-interval"),
        (["--routes-file", "a", "--port", "70000"], {}, "out of range"),
    ],
)
def test_refusals(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse_settings(argv, env)


def test_admin_token_from_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    s = parse_settings(["--admin-port", "9001", "--admin-token-file", str(token)], {})
    assert s.admin_token == "s3cret" and s.routes_file is None
