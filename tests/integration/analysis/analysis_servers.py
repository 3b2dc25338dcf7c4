"""A real model server process (`python -m mdserve serve`) serving the iris model as one revision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from mdserve.sources import sha256_file
from tests.integration.model_server import ServerProcess


class ModelServer(ServerProcess):
    """One `mdserve serve` process serving the iris model as revision `revision` of variant `primary`."""

    def __init__(self, artifact: Path, revision: str, log: Path) -> None:
        super().__init__(
            {
                "MDSERVE_MODEL_NAME": "iris",
                "MDSERVE_MODEL_URI": str(artifact),
                "MDSERVE_MODEL_SHA256": sha256_file(artifact),
                "MDSERVE_VARIANT": "primary",
                "MDSERVE_REVISION": revision,
                "MDSERVE_CACHE_DIR": str(log.parent / f"cache-{revision}"),
            },
            log,
        )
        self.revision = revision

    def predict(self, row: list[float], request_id: str) -> Any:
        r = requests.post(
            f"{self.base}/v1/models/iris:predict",
            json={"instances": [row]},
            headers={"x-request-id": request_id},
            timeout=30,
        )
        r.raise_for_status()
        return r.json()["predictions"][0]

    def feedback(self, items: list[dict[str, Any]]) -> None:
        r = requests.post(f"{self.base}/v1/models/iris:feedback", json=items, timeout=30)
        r.raise_for_status()
        assert {x["status"] for x in r.json()["results"]} == {"scored"}
