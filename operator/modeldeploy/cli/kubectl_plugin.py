"""`kubectl modeldeploy status|history|pause|resume|promote|abort|retry|rollback <revision>` (kubectl plugin).

Runs `kubectl` itself (so it uses whatever context, credentials and flags the user has) to read the
ModelDeployment as JSON and to write a manual action as the `serving.modeldeploy.dev/action` annotation with a
fresh request id; the operator applies each request once and records the outcome in status and Events.
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from modeldeploy.api.schema import GROUP, PLURAL
from modeldeploy.cli.timeline import format_history, format_timeline
from modeldeploy.rollout.actions import ACTION_ANNOTATION, format_action

RESOURCE = f"{PLURAL}.{GROUP}"
ACTIONS = ("pause", "resume", "promote", "abort", "retry", "rollback")


def request_id() -> str:
    """Unique enough per command: seconds since the epoch plus 24 random bits."""
    return f"{int(time.time())}-{secrets.token_hex(3)}"


def _kubectl(args: argparse.Namespace) -> list[str]:
    cmd = [args.kubectl]
    for flag in ("namespace", "context", "kubeconfig"):
        value = getattr(args, flag)
        if value:
            cmd.append(f"--{flag}={value}")
    return cmd


def _get(args: argparse.Namespace) -> dict[str, Any]:
    out = subprocess.run(
        [*_kubectl(args), "get", RESOURCE, args.name, "-o", "json"],
        capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr.strip() or f"kubectl get failed ({out.returncode})")
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def _annotate(args: argparse.Namespace, value: str) -> None:
    out = subprocess.run(
        [*_kubectl(args), "annotate", RESOURCE, args.name, f"{ACTION_ANNOTATION}={value}", "--overwrite"],
        capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr.strip() or f"kubectl annotate failed ({out.returncode})")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kubectl modeldeploy", description=__doc__.split("\n\n")[0])
    p.add_argument("-n", "--namespace", help="namespace (default: the context's)")
    p.add_argument("--context", help="kubeconfig context")
    p.add_argument("--kubeconfig", help="kubeconfig file")
    p.add_argument("--kubectl", default="kubectl", help="kubectl binary")
    sub = p.add_subparsers(dest="command", required=True)
    for name, what in (("status", "phase, progress, weights, last analysis and timeline"),
                       ("history", "finished rollouts (rollback targets)")):
        sub.add_parser(name, help=what).add_argument("name", help="ModelDeployment name")
    helps = {
        "pause": "hold the rollout where it is: no next step, no promotion (analysis continues)",
        "resume": "continue a paused rollout, or end a step held without a duration",
        "promote": "promote the new revision now (once Ready), skipping remaining steps or holds",
        "abort": "roll the new revision back now (all traffic to the stable one)",
        "retry": "roll out the rolled-back revision again",
        "rollback": "serve a revision from history again",
    }
    for verb in ACTIONS:
        sp = sub.add_parser(verb, help=helps[verb])
        sp.add_argument("name", help="ModelDeployment name")
        if verb == "rollback":
            sp.add_argument("revision", help="revision from `kubectl modeldeploy history`")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "status":
        sys.stdout.write(format_timeline(_get(args)))
        return 0
    if args.command == "history":
        sys.stdout.write(format_history(_get(args)))
        return 0
    value = format_action(args.command, request_id(), getattr(args, "revision", None))
    _annotate(args, value)
    print(f"requested {args.command} on {args.name} ({ACTION_ANNOTATION}={value}); "
          f"follow with `kubectl modeldeploy status {args.name}`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
