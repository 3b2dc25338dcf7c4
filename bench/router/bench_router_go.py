"""Router overhead, Python vs Go: direct vs nginx vs `mdserve.router` vs `mdroute` (Go), in one run.

    .venv/bin/python bench/router/bench_router_go.py [--rounds 5] [--seconds 5] [--no-kube]

Same set-up as bench_router.py (whose functions it imports; that file is not changed): two upstream
"variants" served by one nginx (1 worker), nginx as a reverse proxy (1 worker, ``split_clients`` 90/10,
keep-alive pools), the Python router (1 process, uvloop) and the Go router (``hack/build-router.sh``,
1 process, GOMAXPROCS default) with the same 90/10 table. wrk drives each target in turn, rounds
interleaved so drift in machine load hits all alike; medians over rounds. "Added" latency is a proxy's
percentile minus the direct call's. Also measures route change -> in effect for the Go router (file,
admin and, unless --no-kube, ConfigMap watch through a private local control plane).
Rewrites only its section of docs/benchmarks.md (``router-go``) and bench/router/results/router_go.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_router as br  # noqa: E402  (reused, not modified)

from devcluster import benchmarks_doc  # noqa: E402

ROOT = HERE.parents[1]
RESULTS = HERE / "results" / "router_go.json"
TARGETS = ("direct", "nginx", "python", "go", "go1", "go-nomem")
"""``go1`` is the Go router with GOMAXPROCS=1: one core, like nginx's single worker and the Python process;
``go-nomem`` is ``go`` without the feedback memory (MDROUTE_FEEDBACK_MEMORY=0): what remembering costs."""


def build_go_router() -> Path:
    out = subprocess.run(
        [str(ROOT / "hack" / "build-router.sh")], check=True, capture_output=True, text=True
    ).stdout.strip()
    return Path(out.splitlines()[-1])


def write_section(text: str) -> None:
    """Rewrites the `router-go` section of docs/benchmarks.md."""
    benchmarks_doc.write_section("router-go", text)


def kube_change_latency_go(
    binary: Path, tmp: Path, ports: dict[str, int], repeats: int = 5
) -> tuple[float, bool]:
    """ConfigMap PATCH -> first request on the new arm, for the Go router (bench_router's measurement)."""
    result: tuple[float, bool] = br.kube_change_latency(tmp, ports, repeats, router_cmd=[str(binary)])
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", default="1,32", help="comma list of wrk connection counts")
    ap.add_argument("--no-write", action="store_true", help="print only, leave docs and results alone")
    ap.add_argument("--no-kube", action="store_true", help="skip the ConfigMap-watch measurement")
    ap.add_argument("--only", default=",".join(TARGETS), help="comma list of targets to drive")
    args = ap.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: apt-get install -y nginx-light wrk", file=sys.stderr)
            return 2
    binary = build_go_router()
    wanted = [t for t in TARGETS if t in args.only.split(",")]

    procs: list[subprocess.Popen[bytes]] = []
    load_before = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="mdroute-go-bench-"))
    try:
        up = br.start_upstreams(tmp, procs)
        ports, nginx_port, routes, log = up.ports, up.nginx_port, up.routes, up.log
        py_port, go_port, go1_port, nomem_port, admin_port = (br.free_port() for _ in range(5))
        common = [
            "--host", "127.0.0.1", "--routes-file", str(routes), "--log-level", "WARNING",
            "--backend-override", f"stable=http://127.0.0.1:{ports['stable']}",
            "--backend-override", f"canary=http://127.0.0.1:{ports['canary']}",
        ]  # fmt: skip
        token = "bench-token"
        if "python" in wanted:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "mdserve.router", "--port", str(py_port), *common],
                    stdout=log,
                    stderr=log,
                )
            )
        go_routes = tmp / "routes-go.json"
        shutil.copy(routes, go_routes)
        go_common = [a if a != str(routes) else str(go_routes) for a in common]
        procs.append(
            subprocess.Popen(
                [str(binary), "--port", str(go_port), "--admin-port", str(admin_port), *go_common],
                stdout=log,
                stderr=log,
                env={**os.environ, "MDROUTE_ADMIN_TOKEN": token},
            )
        )
        variants = {"go1": (go1_port, {"GOMAXPROCS": "1"}),
                    "go-nomem": (nomem_port, {"MDROUTE_FEEDBACK_MEMORY": "0"})}
        for name, (port, env) in variants.items():
            if name in wanted:
                procs.append(
                    subprocess.Popen(
                        [str(binary), "--port", str(port), *go_common], stdout=log, stderr=log,
                        env={**os.environ, **env},
                    )
                )
        urls = {
            "direct": f"http://127.0.0.1:{ports['stable']}/v2/models/m/infer",
            "nginx": f"http://127.0.0.1:{nginx_port}/v2/models/m/infer",
            "python": f"http://127.0.0.1:{py_port}/v2/models/m/infer",
            "go": f"http://127.0.0.1:{go_port}/v2/models/m/infer",
            "go1": f"http://127.0.0.1:{go1_port}/v2/models/m/infer",
            "go-nomem": f"http://127.0.0.1:{nomem_port}/v2/models/m/infer",
        }
        targets = {name: urls[name] for name in wanted}
        for url in targets.values():
            br.wait_up(url)
        br.wait_up(f"http://127.0.0.1:{go_port}/-/ready")
        script = br.post_script(tmp)
        modes = {
            (f"latency ({c} connection)" if c == 1 else f"throughput ({c} connections)"): c
            for c in (int(x) for x in args.connections.split(","))
        }
        results = br.run_rounds(targets, modes, args.rounds, args.seconds, script)
        changes = br.change_latency(
            f"http://127.0.0.1:{go_port}", go_routes, f"http://127.0.0.1:{admin_port}/-/routes", token
        )
        kube: tuple[float, bool] | None = None
        if not args.no_kube:
            try:
                kube = kube_change_latency_go(binary, tmp, ports)
            except (OSError, AssertionError, TimeoutError) as exc:  # the split figures above still stand
                print(f"ConfigMap-watch measurement failed: {exc!r}", file=sys.stderr)
    finally:
        br.stop_all(procs)
        shutil.rmtree(tmp, ignore_errors=True)

    med = br.median_of(results)

    command = (
        f".venv/bin/python bench/router/bench_router_go.py --rounds {args.rounds} --seconds {args.seconds}"
        + (" --no-kube" if args.no_kube else "")
    )
    ratios: dict[str, dict[str, dict[str, float]]] = {}
    lines = [
        "## Router in Go (`mdroute`) vs Python router vs nginx `split_clients`",
        "",
        f"Command: `{command}` ({time.strftime('%Y-%m-%d')}, loopback, {os.cpu_count()} cores shared "
        f"with other work: 1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after).",
        "Upstreams: one nginx (1 worker) returning a fixed JSON body on two ports; proxies: nginx (1 worker, "
        "`split_clients` 90/10, keep-alive pools), the Python router (`python -m mdserve.router`, 1 process, "
        "uvloop) and the Go router (`mdroute`, 1 process; `go` = GOMAXPROCS default, i.e. up to all cores; "
        "`go1` = GOMAXPROCS=1, one core like nginx's single worker; `go-nomem` = `go` with "
        "MDROUTE_FEEDBACK_MEMORY=0, i.e. without remembering which variant served each request id for "
        "feedback routing, which every other Go row does), all with the same 90/10 table; "
        f"load: `wrk -t1`, POST of a {len(br.BODY)}-byte JSON body, {args.seconds} s per cell, medians over "
        f"{args.rounds} interleaved rounds.",
        "",
        *br.latency_table(modes, targets, results),
    ]
    for mode in modes:
        base50 = med(mode, "direct", "p50_ms")
        ng = med(mode, "nginx", "p50_ms") - base50
        for name in ("python", "go", "go1", "go-nomem"):
            if name in targets:
                added_ms = med(mode, name, "p50_ms") - base50
                ratios.setdefault(mode, {})[name] = {
                    "added_p50_vs_nginx": added_ms / ng if ng > 0 else float("inf"),
                    "rps_vs_nginx": med(mode, name, "rps") / med(mode, "nginx", "rps"),
                }
    lines += ["", "Ratios (router ÷ nginx; goal: added p50 at most 2 times nginx's):", ""]
    for mode, per in ratios.items():
        parts = []
        for name, ratio in per.items():
            verdict = "met" if ratio["added_p50_vs_nginx"] <= 2 else "NOT met"
            added_x, rps_x = ratio["added_p50_vs_nginx"], ratio["rps_vs_nginx"]
            parts.append(f"{name}: added p50 x{added_x:.2f} ({verdict}), throughput x{rps_x:.2f}")
        lines.append(f"- {mode}: " + "; ".join(parts))
    lines += [
        "",
        "p99 values on this shared machine mostly measure scheduling stalls from other work "
        "(compare the direct row); the p50 columns are the meaningful ones.",
        "",
        "Go router, route change → in effect (median of 5, write → first request served by the new arm): "
        f"file source (polled every 0.2 s) {changes['file'] * 1000:.0f} ms; admin `PUT /-/routes` "
        f"{changes['admin'] * 1000:.1f} ms; "
        + (
            f"ConfigMap watch (PATCH through a local kube-apiserver) {kube[0] * 1000:.0f} ms, and with the "
            f"API server stopped the router {'kept' if kube[1] else 'did NOT keep'} serving its last table."
            if kube
            else "ConfigMap watch not measured (--no-kube, or it failed: see stderr)."
        ),
    ]
    text = "\n".join(lines)
    print("\n" + text)
    if not args.no_write:
        doc = {
            "command": command,
            "targets": list(targets),
            "medians": {
                mode: {n: {f: med(mode, n, f) for f in ("p50_ms", "p99_ms", "rps")} for n in targets}
                for mode in modes
            },
            "ratios_vs_nginx": ratios,
            "change_seconds": {
                **changes,
                **({"configmap": kube[0], "kept_without_api": kube[1]} if kube else {}),
            },
            "rounds": {f"{mode}|{name}": [vars(x) for x in runs] for (mode, name), runs in results.items()},
        }
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(doc, indent=1) + "\n")
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
