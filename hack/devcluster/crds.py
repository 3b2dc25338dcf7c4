"""Waiting for a CustomResourceDefinition to be served.

`kubectl wait --for=condition=Established` fails at once ("accessor error") when it runs before the apiserver
has written the CRD's first status, which happens on a busy machine; this polls instead.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping

ESTABLISHED = "jsonpath={.status.conditions[?(@.type=='Established')].status}"


def wait_crd_established(name: str, env: Mapping[str, str], timeout: float = 60) -> None:
    """Returns once CRD `name` (e.g. `modeldeployments.serving.modeldeploy.dev`) is Established."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        result = subprocess.run(["kubectl", "get", "crd", name, "-o", ESTABLISHED], capture_output=True,
                                text=True, env=dict(env), timeout=30)
        if result.returncode == 0 and result.stdout.strip() == "True":
            return
        last = (result.stderr or result.stdout).strip()
        time.sleep(0.3)
    raise TimeoutError(f"CRD {name} not Established after {timeout:.0f}s: {last or 'no status yet'}")
