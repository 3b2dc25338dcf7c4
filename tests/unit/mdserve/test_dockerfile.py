"""The image cannot be built here (no Docker engine): check what the Dockerfile names exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mdserve.__main__ import main
from mdserve.routing import route

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "serving-image" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split()[0].upper(), line.partition(" ")[2]) for line in lines]


def test_copied_sources_exist() -> None:
    for keyword, args in instructions():
        if keyword == "COPY" and "--from" not in args:
            *sources, _ = args.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY source {source} is missing"


def test_base_images_are_pinned_and_the_final_stage_is_slim_and_non_root() -> None:
    text = DOCKERFILE.read_text()
    image = re.search(r"ARG PYTHON_IMAGE=(\S+)", text)
    assert image and re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", image.group(1))
    final = text.rsplit("\nFROM ", 1)[1]
    assert "USER 10001" in final and "HEALTHCHECK" in final
    assert not re.search(r"apt-get install|gcc|build-essential", final)


def test_entrypoint_and_healthcheck_name_real_commands_and_routes(capsys: pytest.CaptureFixture[str]) -> None:
    entry = dict(instructions())
    assert entry["ENTRYPOINT"] == '["python", "-m", "mdserve"]' and entry["CMD"] == '["serve"]'
    assert (ROOT / "serving-image" / "mdserve" / "__main__.py").is_file()
    health_path = re.search(r"(/v2/health/\w+)", entry["HEALTHCHECK"])
    assert health_path and route(health_path.group(1)) is not None
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--help"])
    assert exit_info.value.code == 0 and "MDSERVE_" in capsys.readouterr().out
