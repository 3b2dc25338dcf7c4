"""`python -m devcluster up|down|status|env`: the local control plane for demos and tests."""

from __future__ import annotations

import argparse
import sys

from devcluster.cluster import ClusterError, LocalCluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devcluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    parser.add_argument("--nodes", type=int, default=2, help="number of kwok nodes (default 2)")
    args = parser.parse_args(argv)
    cluster = LocalCluster(nodes=args.nodes)
    try:
        if args.command == "up":
            cluster.up()
            print_usage(cluster)
        elif args.command == "down":
            cluster.down()
        elif args.command == "status":
            ok = cluster.healthy()
            print("running" if ok else "not running")
            return 0 if ok else 1
        else:
            for key, value in cluster.env().items():
                print(f"export {key}={value}")
    except ClusterError as exc:
        print(f"\033[31m[cluster] error:\033[0m {exc}", file=sys.stderr)
        return 1
    return 0


def print_usage(cluster: LocalCluster) -> None:
    env = cluster.env()
    print(
        "\nThe local cluster is up. To use it from this shell:\n"
        f"  export KUBECONFIG={env['KUBECONFIG']}\n"
        f"  export PATH={cluster.paths.bin}:$PATH\n"
        "  kubectl get nodes\n"
        "Stop it with: make cluster-down\n"
    )


if __name__ == "__main__":
    sys.exit(main())
