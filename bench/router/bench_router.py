"""Router overhead vs nginx: added latency (p50, p99) and throughput, side by side in one run.

    .venv/bin/python bench/router/bench_router.py [--rounds 3] [--seconds 5]

Needs Debian's ``nginx`` (or ``nginx-light``) and ``wrk``. Starts, on loopback only:
- two upstream "variants": one nginx process (1 worker) answering a fixed JSON body on two ports;
- nginx as a reverse proxy (1 worker) with ``split_clients`` 90/10 and keep-alive upstream pools;
- the router (``python -m mdserve.router``, one process) with the same 90/10 table.
wrk drives each target in turn (direct, nginx, router), repeated ``--rounds`` times interleaved so
drift in machine load hits all alike; medians over rounds are reported. "Added" latency is the
proxy's percentile minus the direct call's. Also measures route change → in effect for the file
and admin sources. Rewrites only its section of docs/benchmarks.md. All processes are stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from devcluster import benchmarks_doc

ROOT = Path(__file__).resolve().parents[2]
BODY = '{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


def nginx_conf(prefix: Path, body: str) -> str:
    return f"daemon off;\nworker_processes 1;\npid {prefix}/nginx.pid;\nerror_log stderr warn;\n{body}"


def upstream_conf(prefix: Path, ports: dict[str, int]) -> str:
    servers = "".join(
        f"server {{ listen 127.0.0.1:{port}; keepalive_requests 1000000; location / {{ "
        f'default_type application/json; return 200 \'{{"backend":"{name}","outputs":[0.5]}}\'; }} }}\n'
        for name, port in ports.items()
    )
    return nginx_conf(prefix, f"events {{}}\nhttp {{ access_log off;\n{servers}}}\n")


def proxy_conf(prefix: Path, port: int, ports: dict[str, int]) -> str:
    pools = "".join(
        f"upstream {name} {{ server 127.0.0.1:{p}; keepalive 64; }}\n" for name, p in ports.items()
    )
    http = (
        "events {}\nhttp { access_log off;\n"
        f"client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy;\n"
        "split_clients $request_id $variant { 90% stable; * canary; }\n"
        f"{pools}"
        f"server {{ listen 127.0.0.1:{port}; keepalive_requests 1000000;\n"
        "location / { proxy_pass http://$variant; "
        'proxy_http_version 1.1; proxy_set_header Connection ""; '
        "proxy_set_header X-Request-Id $request_id; } }\n}\n"
    )
    return nginx_conf(prefix, http)


@dataclass
class Upstreams:
    """Two nginx upstreams (stable, canary) and nginx's 90/10 `split_clients` proxy in front of them."""

    ports: dict[str, int]
    """Upstream name -> port."""
    nginx_port: int
    """Port of the nginx split proxy."""
    routes: Path
    """A 90/10 route table for the routers naming the upstreams by Service host (overridden to `ports`)."""
    log: BinaryIO
    """Where every process of the benchmark writes."""


def start_upstreams(tmp: Path, procs: list[subprocess.Popen[bytes]]) -> Upstreams:
    """Start both nginx processes (appended to `procs`) and write the routers' table."""
    ports = {"stable": free_port(), "canary": free_port()}
    up_dir, px_dir = tmp / "upstream", tmp / "proxy"
    for d in (up_dir, px_dir):
        d.mkdir()
    (up_dir / "nginx.conf").write_text(upstream_conf(up_dir, ports))
    nginx_port = free_port()
    (px_dir / "nginx.conf").write_text(proxy_conf(px_dir, nginx_port, ports))
    log = (tmp / "processes.log").open("wb")
    for d in (up_dir, px_dir):
        procs.append(
            subprocess.Popen(["nginx", "-p", str(d), "-c", str(d / "nginx.conf")], stdout=log, stderr=log)
        )
    routes = tmp / "routes.json"
    routes.write_text(
        json.dumps(
            {
                "version": "bench",
                "variants": [
                    {"name": "stable", "backend": "http://demo-stable.bench.svc:8080", "weight": 90},
                    {"name": "canary", "backend": "http://demo-canary.bench.svc:8080", "weight": 10},
                ],
            }
        )
    )
    return Upstreams(ports, nginx_port, routes, log)


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, connections: int, seconds: int, script: Path) -> WrkResult:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    pct = {
        m[0]: _ms(m[1], m[2])
        for m in re.findall(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    }
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return WrkResult(rps, pct["50"], pct["99"], errors)


Results = dict[tuple[str, str], list[WrkResult]]
"""(mode, target) -> one wrk result per round."""


def post_script(tmp: Path) -> Path:
    """The wrk script POSTing the inference body."""
    script = tmp / "post.lua"
    script.write_text(
        f"wrk.method = 'POST'\nwrk.body = '{BODY}'\nwrk.headers['Content-Type'] = 'application/json'\n"
    )
    return script


def run_rounds(targets: dict[str, str], modes: dict[str, int], rounds: int, seconds: int,
               script: Path) -> Results:
    """Warm every target up, then `rounds` interleaved rounds of every (mode, target) cell."""
    results: Results = {}
    for url in targets.values():  # warm-up: pools filled, code paths hot
        run_wrk(url, 8, 1, script)
    for r in range(rounds):
        for mode, conns in modes.items():
            for name, url in targets.items():
                res = run_wrk(url, conns, seconds, script)
                results.setdefault((mode, name), []).append(res)
                print(
                    f"round {r + 1} {mode:28} {name:7} p50 {res.p50_ms:.3f} ms  p99 {res.p99_ms:.3f} ms  "
                    f"{res.rps:9.0f} req/s  errors {res.errors}",
                    flush=True,
                )
    return results


def median_of(results: Results) -> Callable[[str, str, str], float]:
    """med(mode, target, field): the median of one WrkResult field over the rounds."""

    def med(mode: str, name: str, field: str) -> float:
        return float(statistics.median(getattr(x, field) for x in results[(mode, name)]))

    return med


def latency_table(modes: dict[str, int], targets: dict[str, str], results: Results) -> list[str]:
    """The markdown table of medians, with the latency each proxy adds over `direct`."""
    med = median_of(results)
    lines = [
        "| mode | target | p50 ms | p99 ms | req/s | added p50 ms | added p99 ms | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode in modes:
        base50, base99 = med(mode, "direct", "p50_ms"), med(mode, "direct", "p99_ms")
        for name in targets:
            p50, p99 = med(mode, name, "p50_ms"), med(mode, name, "p99_ms")
            errors = sum(x.errors for x in results[(mode, name)])
            added = "" if name == "direct" else f"{p50 - base50:.3f}"
            added99 = "" if name == "direct" else f"{p99 - base99:.3f}"
            lines.append(
                f"| {mode} | {name} | {p50:.3f} | {p99:.3f} | {med(mode, name, 'rps'):.0f} | {added} | "
                f"{added99} | {errors} |"
            )
    return lines


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM in reverse start order, SIGKILL whatever is still up after 15 s."""
    for p in reversed(procs):
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()


def change_latency(
    router_url: str, routes: Path, admin: str, token: str, repeats: int = 5
) -> dict[str, float]:
    """Median seconds from writing a table to the first request served by the newly chosen arm."""

    def table(target: str, version: str) -> str:
        w = {"stable": 100, "canary": 0} if target == "stable" else {"stable": 0, "canary": 100}
        return json.dumps(
            {
                "version": version,
                "variants": [
                    {"name": n, "backend": f"http://demo-{n}.bench.svc:8080", "weight": w[n]} for n in w
                ],
            }
        )

    def until(target: str, started: float) -> float:
        while time.perf_counter() - started < 10:
            with urllib.request.urlopen(router_url + "/x", timeout=5) as resp:
                if json.loads(resp.read())["backend"] == target:
                    return time.perf_counter() - started
        raise TimeoutError(target)

    found: dict[str, list[float]] = {"file": [], "admin": []}
    for i in range(repeats):
        for source in ("file", "admin"):
            target = "canary" if i % 2 == 0 else "stable"
            doc = table(target, f"{source}-{i}")
            started = time.perf_counter()
            if source == "file":
                tmp = routes.with_suffix(".tmp")
                tmp.write_text(doc)
                os.replace(tmp, routes)
            else:
                req = urllib.request.Request(
                    admin, data=doc.encode(), method="PUT", headers={"Authorization": f"Bearer {token}"}
                )
                urllib.request.urlopen(req, timeout=5).close()
            found[source].append(until(target, started))
            time.sleep(0.3)
    return {k: statistics.median(v) for k, v in found.items()}


def kube_change_latency(
    tmp: Path, ports: dict[str, int], repeats: int = 5, router_cmd: list[str] | None = None
) -> tuple[float, bool]:
    """Median seconds from a ConfigMap PATCH to the first request served by the new arm, through a
    private local control plane (hack/devcluster); and whether the router kept serving its last
    table after the API server was stopped."""
    import http.client
    import ssl

    sys.path.insert(0, str(ROOT / "hack"))
    from devcluster.cluster import LocalCluster
    from devcluster.paths import ClusterPaths

    cluster = LocalCluster(ClusterPaths(tmp / "cluster"), nodes=1)
    cluster.up()
    router: subprocess.Popen[bytes] | None = None
    try:
        state = json.loads(cluster.paths.state_file.read_text())
        pki = cluster.paths.pki
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))

        def api(method: str, path: str, doc: object, ctype: str = "application/json") -> int:
            conn = http.client.HTTPSConnection(
                "127.0.0.1", state["ports"]["apiserver"], context=ctx, timeout=10
            )
            try:
                conn.request(method, path, json.dumps(doc), {"Content-Type": ctype})
                resp = conn.getresponse()
                resp.read()
                return resp.status
            finally:
                conn.close()

        def table(target: str, version: str) -> str:
            w = {"stable": 100, "canary": 0} if target == "stable" else {"stable": 0, "canary": 100}
            return json.dumps(
                {
                    "version": version,
                    "variants": [
                        {"name": n, "backend": f"http://demo-{n}.bench.svc:8080", "weight": w[n]} for n in w
                    ],
                }
            )

        cms = "/api/v1/namespaces/default/configmaps"
        body = {"metadata": {"name": "bench-routes"}, "data": {"routes.json": table("stable", "k0")}}
        assert api("POST", cms, body) == 201
        port = free_port()
        router = subprocess.Popen(
            [
                *(router_cmd or [sys.executable, "-m", "mdserve.router"]),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--configmap",
                "bench-routes",
                "--namespace",
                "default",
                "--kubeconfig",
                str(cluster.paths.kubeconfig),
                "--log-level",
                "WARNING",
                "--backend-override",
                f"stable=http://127.0.0.1:{ports['stable']}",
                "--backend-override",
                f"canary=http://127.0.0.1:{ports['canary']}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(tmp / "kube-router.log").open("wb"),
        )
        url = f"http://127.0.0.1:{port}"
        wait_up(url + "/-/ready")
        found = []
        for i in range(repeats):
            target = "canary" if i % 2 == 0 else "stable"
            patch = {"data": {"routes.json": table(target, f"k{i + 1}")}}
            started = time.perf_counter()
            assert api("PATCH", f"{cms}/bench-routes", patch, "application/merge-patch+json") == 200
            while time.perf_counter() - started < 10:
                with urllib.request.urlopen(url + "/x", timeout=5) as resp:
                    if json.loads(resp.read())["backend"] == target:
                        found.append(time.perf_counter() - started)
                        break
            else:
                raise TimeoutError(f"ConfigMap change {i} not applied within 10 s")
            time.sleep(0.3)
        cluster.down(quiet=True)  # the API server goes away: the router must keep its last table
        time.sleep(2.0)
        kept = True
        for _ in range(20):
            with urllib.request.urlopen(url + "/x", timeout=5) as resp:
                kept &= resp.status == 200
        return statistics.median(found), kept
    finally:
        if router is not None:
            router.send_signal(signal.SIGTERM)
            try:
                router.wait(timeout=15)
            except subprocess.TimeoutExpired:
                router.kill()
        cluster.down(quiet=True)


def write_section(text: str) -> None:
    """Rewrites the `router` section of docs/benchmarks.md."""
    benchmarks_doc.write_section("router", text)


RESULTS = Path(__file__).resolve().parent / "results" / "router.json"


def save_results(
    args: argparse.Namespace,
    modes: dict[str, int],
    targets: dict[str, str],
    results: dict[tuple[str, str], list[WrkResult]],
    med: Callable[[str, str, str], float],
) -> None:
    """Medians per (mode, target) as JSON, for bench/plots.py."""
    doc = {
        "command": f"python bench/router/bench_router.py --rounds {args.rounds} --seconds {args.seconds}",
        "medians": {
            mode: {name: {f: med(mode, name, f) for f in ("p50_ms", "p99_ms", "rps")} for name in targets}
            for mode in modes
        },
        "rounds": {f"{mode}|{name}": [vars(x) for x in runs] for (mode, name), runs in results.items()},
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=1) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    ap.add_argument(
        "--no-kube",
        action="store_true",
        help="skip the ConfigMap-watch measurement (needs hack/build-binaries.sh)",
    )
    args = ap.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: apt-get install -y nginx-light wrk", file=sys.stderr)
            return 2

    procs: list[subprocess.Popen[bytes]] = []
    load_before = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="mdroute-bench-"))
    try:
        up = start_upstreams(tmp, procs)
        ports, nginx_port, routes, log = up.ports, up.nginx_port, up.routes, up.log
        router_port, admin_port = free_port(), free_port()
        token = "bench-token"
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mdserve.router",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(router_port),
                    "--routes-file",
                    str(routes),
                    "--admin-port",
                    str(admin_port),
                    "--log-level",
                    "WARNING",
                    "--backend-override",
                    f"stable=http://127.0.0.1:{ports['stable']}",
                    "--backend-override",
                    f"canary=http://127.0.0.1:{ports['canary']}",
                ],
                stdout=log,
                stderr=log,
                env={**os.environ, "MDROUTE_ADMIN_TOKEN": token},
            )
        )
        targets = {
            "direct": f"http://127.0.0.1:{ports['stable']}/v2/models/m/infer",
            "nginx": f"http://127.0.0.1:{nginx_port}/v2/models/m/infer",
            "router": f"http://127.0.0.1:{router_port}/v2/models/m/infer",
        }
        for url in targets.values():
            wait_up(url)
        wait_up(f"http://127.0.0.1:{router_port}/-/ready")
        script = post_script(tmp)
        modes = {"latency (1 connection)": 1, "throughput (32 connections)": 32}
        results = run_rounds(targets, modes, args.rounds, args.seconds, script)
        changes = change_latency(
            f"http://127.0.0.1:{router_port}", routes, f"http://127.0.0.1:{admin_port}/-/routes", token
        )
        kube: tuple[float, bool] | None = None
        if not args.no_kube:
            try:
                kube = kube_change_latency(tmp, ports)
            except (OSError, AssertionError, TimeoutError) as exc:  # the split figures above still stand
                print(f"ConfigMap-watch measurement failed: {exc!r}", file=sys.stderr)
    finally:
        stop_all(procs)
        shutil.rmtree(tmp, ignore_errors=True)

    med = median_of(results)

    save_results(args, modes, targets, results, med)

    lines = [
        "## Router (`mdserve.router`) vs nginx `split_clients`",
        "",
        "Command: `.venv/bin/python bench/router/bench_router.py "
        f"--rounds {args.rounds} --seconds {args.seconds}` "
        f"({time.strftime('%Y-%m-%d')}, loopback, {os.cpu_count()} cores shared with other work: "
        f"1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after).",
        "Upstreams: one nginx (1 worker) returning a fixed JSON body on two ports; proxies: nginx (1 worker, "
        "`split_clients` 90/10, keep-alive pools) and the router (1 process, uvloop, 90/10 table); "
        f"load: `wrk -t1`, POST of a {len(BODY)}-byte JSON body, {args.seconds} s per cell, "
        f"medians over {args.rounds} interleaved rounds.",
        "",
        *latency_table(modes, targets, results),
    ]
    ratios = {}
    for mode in modes:
        base50 = med(mode, "direct", "p50_ms")
        ng, rt = med(mode, "nginx", "p50_ms") - base50, med(mode, "router", "p50_ms") - base50
        ratios[mode] = (
            rt / ng if ng > 0 else float("inf"),
            med(mode, "router", "rps") / med(mode, "nginx", "rps"),
        )
    lines += ["", "Ratios (router ÷ nginx):", ""]
    for mode, (lat, thr) in ratios.items():
        verdict = "met" if lat <= 2 else "NOT met"
        lines.append(f"- {mode}: added p50 x{lat:.2f} (goal ≤ 2: {verdict}), throughput x{thr:.2f}")
    lines += [
        "",
        "p99 values on this shared machine mostly measure scheduling stalls from other work "
        "(compare the direct row); the p50 columns are the meaningful ones.",
    ]
    lines += [
        "",
        "Route change → in effect (median of 5, write → first request served by the new arm, "
        "sequential requests):",
        f"file source (polled every 0.2 s) {changes['file'] * 1000:.0f} ms; admin `PUT /-/routes` "
        f"{changes['admin'] * 1000:.1f} ms; "
        + (
            f"ConfigMap watch (PATCH through a local kube-apiserver) {kube[0] * 1000:.0f} ms, "
            f"and with the API server stopped the router {'kept' if kube[1] else 'did NOT keep'} serving "
            "its last table."
            if kube
            else "ConfigMap watch not measured (--no-kube)."
        ),
    ]
    text = "\n".join(lines)
    print("\n" + text)
    if not args.no_write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
