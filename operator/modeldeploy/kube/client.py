"""The only module that talks to the Kubernetes API.

Blocking (the official `kubernetes` client): call it from worker threads, never from the asyncio loop. Objects
are
plain dicts. Writes are server-side applies with the `modeldeploy` field manager, deletes and Event creations;
every
request is counted (per verb and kind) so tests and benchmarks can assert that a no-op reconcile writes
nothing.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from prometheus_client import Counter as PromCounter

from modeldeploy.api.schema import GROUP, PLURAL, VERSION
from modeldeploy.render.naming import MANAGER
from modeldeploy.traffic.providers import API_RESOURCES

API_REQUESTS = PromCounter(
    "modeldeploy_api_requests_total", "Kubernetes API requests made by the operator.", ["verb", "kind"]
)
WRITE_VERBS = frozenset({"apply", "apply_status", "delete", "create_event"})
GATEWAY_API = "/apis/gateway.networking.k8s.io/v1"
"""Discovery document of the Gateway API group version the HTTPRoutes are rendered for."""
DISCOVERY_TTL_SECONDS = 10.0
"""How long a Gateway API discovery answer is reused: CRDs installed later are noticed within this time."""
SCALE_MANAGER = f"{MANAGER}-scale"
"""Field manager of `KubeClient.scale` (owns spec.replicas of older revisions only)."""


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the REST API."""

    prefix: str
    """`/api/v1` or `/apis/<group>/<version>`."""
    plural: str
    """Plural resource name."""


RESOURCES: dict[str, Resource] = {
    "Deployment": Resource("/apis/apps/v1", "deployments"),
    "Service": Resource("/api/v1", "services"),
    "HorizontalPodAutoscaler": Resource("/apis/autoscaling/v2", "horizontalpodautoscalers"),
    "Event": Resource("/api/v1", "events"),
    "ModelDeployment": Resource(f"/apis/{GROUP}/{VERSION}", PLURAL),
    **{kind: Resource(prefix, plural) for kind, (prefix, plural) in API_RESOURCES.items()},
}


class ApiError(Exception):
    """A non-2xx answer from the apiserver."""

    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        self.status = status
        self.body = body
        try:
            detail = str(json.loads(body).get("message", body))
        except ValueError:
            detail = body
        super().__init__(f"{method} {path}: HTTP {status}: {detail[:500]}")


def load_api_client(kubeconfig: str | None = None, pool_size: int = 8) -> k8s.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    configuration = k8s.Configuration()
    try:
        if kubeconfig is not None:
            raise k8s_config.ConfigException("explicit kubeconfig")
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except k8s_config.ConfigException:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
    configuration.connection_pool_maxsize = pool_size
    return k8s.ApiClient(configuration)


class KubeClient:
    """Typed-by-kind REST calls on dicts; thread-safe."""

    def __init__(self, api: k8s.ApiClient, timeout: float = 30.0) -> None:
        self.api = api
        self.timeout = timeout
        self._lock = threading.Lock()
        self.calls: Counter[tuple[str, str]] = Counter()
        """(verb, kind) -> requests made by this client."""
        self._gateway_api: tuple[float, bool] | None = None
        """(monotonic time of the answer, HTTPRoute served) of the last discovery."""

    def writes(self) -> int:
        with self._lock:
            return sum(n for (verb, _), n in self.calls.items() if verb in WRITE_VERBS)

    def _count(self, verb: str, kind: str) -> None:
        with self._lock:
            self.calls[(verb, kind)] += 1
        API_REQUESTS.labels(verb, kind).inc()

    def _request(
        self,
        verb: str,
        kind: str,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        self._count(verb, kind)
        headers = {"Accept": "application/json", "Content-Type": content_type}
        params = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*params, _request_timeout=self.timeout)
        response.read()  # type: ignore[no-untyped-call]
        text = response.data.decode("utf-8") if response.data else ""
        if not 200 <= response.status <= 299:
            raise ApiError(response.status, method, path, text)
        return json.loads(text) if text else None

    @staticmethod
    def _path(kind: str, namespace: str, name: str | None = None, sub: str | None = None) -> str:
        r = RESOURCES[kind]
        path = f"{r.prefix}/namespaces/{quote(namespace)}/{r.plural}"
        if name is not None:
            path += f"/{quote(name)}"
        if sub is not None:
            path += f"/{sub}"
        return path

    def gateway_api_available(self) -> bool:
        """Whether the apiserver serves gateway.networking.k8s.io/v1 `httproutes` (discovery, cached for
        DISCOVERY_TTL_SECONDS). Blocking: call it from a worker thread."""
        now = time.monotonic()
        with self._lock:
            cached = self._gateway_api
        if cached is not None and now - cached[0] < DISCOVERY_TTL_SECONDS:
            return cached[1]
        try:
            doc = self._request("discover", "HTTPRoute", "GET", GATEWAY_API) or {}
        except ApiError as e:
            if e.status not in (404, 503):
                raise
            doc = {}
        served = any(r.get("name") == "httproutes" for r in doc.get("resources", []) or [])
        with self._lock:
            self._gateway_api = (now, served)
        return served

    def forget_discovery(self) -> None:
        """Drops the cached discovery answer (a listed kind turned out not to be served)."""
        with self._lock:
            self._gateway_api = None

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self._request("get", kind, "GET", self._path(kind, namespace, name))
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        return obj

    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Secret, read-only (the Prometheus bearer token). Not in RESOURCES, which lists the kinds the
        operator manages (reads, applies, deletes); the chart grants `get` on the token Secret only."""
        path = f"/api/v1/namespaces/{quote(namespace)}/secrets/{quote(name)}"
        try:
            obj: dict[str, Any] = self._request("get", "Secret", "GET", path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        return obj

    def list(
        self, kind: str, namespace: str | None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        r = RESOURCES[kind]
        path = self._path(kind, namespace) if namespace else f"{r.prefix}/{r.plural}"
        query = [("labelSelector", label_selector)] if label_selector else []
        data = self._request("list", kind, "GET", path, query=query)
        items: list[dict[str, Any]] = data.get("items", [])
        api_version, item_kind = data.get("apiVersion", ""), kind
        for item in items:  # list items come without apiVersion/kind
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", item_kind)
        return items

    def apply(self, manifest: dict[str, Any], field_manager: str = MANAGER) -> dict[str, Any]:
        """Server-side apply with force: the operator owns the fields it renders, even after a hand edit."""
        kind, meta = manifest["kind"], manifest["metadata"]
        path = self._path(kind, meta["namespace"], meta["name"])
        obj: dict[str, Any] = self._request(
            "apply",
            kind,
            "PATCH",
            path,
            body=manifest,
            query=[("fieldManager", field_manager), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )
        return obj

    def apply_status(
        self, kind: str, api_version: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """Server-side apply of the status subresource: fields this manager stops sending are removed."""
        body = {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "status": status,
        }
        obj: dict[str, Any] = self._request(
            "apply_status",
            kind,
            "PATCH",
            self._path(kind, namespace, name, "status"),
            body=body,
            query=[("fieldManager", MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )
        return obj

    def scale(self, kind: str, namespace: str, name: str, replicas: int) -> dict[str, Any]:
        """Sets `spec.replicas` alone: a server-side apply under a field manager of its own (the same manager
        applying a partial manifest would drop everything else it applied). For children no longer rendered
        from the current spec (older revisions kept for rollback)."""
        manifest = {
            "apiVersion": "apps/v1" if kind == "Deployment" else "v1",
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas},
        }
        return self.apply(manifest, field_manager=SCALE_MANAGER)

    def delete(self, kind: str, namespace: str, name: str, uid: str | None = None) -> bool:
        """Deletes in the background; the uid precondition avoids deleting a same-named successor."""
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self._request("delete", kind, "DELETE", self._path(kind, namespace, name), body=body)
        except ApiError as e:
            if e.status in (404, 409):
                return False
            raise
        return True

    def event(self, involved: dict[str, Any], etype: str, reason: str, message: str) -> None:
        """A core/v1 Event on `involved` (shown by `kubectl describe` and `kubectl events`)."""
        meta = involved["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion", ""),
                "kind": involved.get("kind", ""),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "type": etype,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": MANAGER},
            "reportingComponent": MANAGER,
            "reportingInstance": MANAGER,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self._request("create_event", "Event", "POST", self._path("Event", meta["namespace"]), body=body)
