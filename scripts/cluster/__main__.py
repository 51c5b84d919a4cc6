"""`python -m scripts.cluster up | install | down | status` (see the package docstring)."""

from __future__ import annotations

import argparse
import sys

from scripts.cluster.cluster import Cluster, ClusterError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.cluster")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the cluster (last line: export KUBECONFIG=...)")
    inst = sub.add_parser("install", help="build, push and helm install (last line: the API's URL)")
    inst.add_argument("--replicas", type=int, default=2)
    sub.add_parser("down", help="remove everything the cluster made")
    sub.add_parser("status", help="say whether it runs")
    args = parser.parse_args(argv)
    cluster = Cluster()
    try:
        if args.command == "up":
            cluster.up()
            print(f"export KUBECONFIG={cluster.kubeconfig}")
        elif args.command == "install":
            from scripts.cluster.install import (
                install,
            )  # imports the chart helpers only when needed

            done = install(cluster, replicas=args.replicas)
            print(f"[cluster] installed in {done.timings['total']} s: {done.timings}")
            print(done.service_url)
        elif args.command == "down":
            problems = cluster.down()
            if problems:
                print(f"[cluster] could not remove: {', '.join(problems)}", file=sys.stderr)
                return 1
            print("[cluster] removed")
        else:
            print("running" if cluster.running() else "not running")
            return 0 if cluster.running() else 3
    except ClusterError as exc:
        print(f"[cluster] error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
