"""`python -m scripts.cluster up | images | install | load | down | status` (see the package
docstring)."""

from __future__ import annotations

import argparse
import shlex
import sys

from scripts.cluster.cluster import Cluster, ClusterError

DEFAULT_LOAD_PATH = "/api/v1/users?per_page=3"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.cluster")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "up", help="start the cluster (last line: export KUBECONFIG=... DOCKER_HOST=... ...)"
    )
    sub.add_parser(
        "images", help="build the app's images, push them, and publish the public-name stand-ins"
    )
    inst = sub.add_parser("install", help="build, push and helm install (last line: the API's URL)")
    inst.add_argument("--replicas", type=int, default=2)
    ld = sub.add_parser(
        "load",
        help="GET load on URL through fresh connections; stops by itself (or on SIGTERM); "
        "exit 1 if any request failed",
    )
    ld.add_argument("url", help="e.g. the API's URL from `install`")
    ld.add_argument("--path", action="append", help=f"repeatable (default: {DEFAULT_LOAD_PATH})")
    ld.add_argument("--seconds", type=float, default=60.0)
    ld.add_argument("--threads", type=int, default=6)
    sub.add_parser("down", help="remove everything the cluster made")
    sub.add_parser("status", help="say whether it runs")
    args = parser.parse_args(argv)
    if args.command == "load":
        from scripts.cluster.load import run_cli

        paths = args.path or [DEFAULT_LOAD_PATH]
        return run_cli(args.url, paths, args.seconds, args.threads)
    cluster = Cluster()
    try:
        if args.command == "up":
            cluster.up()
            exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in cluster.exports().items())
            print(f"export {exports}")
        elif args.command == "images":
            from scripts.cluster.install import build_and_push

            refs, timings = build_and_push(cluster)
            print(f"[cluster] images in {timings}")
            print(" ".join(refs.values()))
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
