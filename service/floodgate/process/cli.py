"""The `floodgate` console script: serve, worker, migrate, operator, policy validate."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from floodgate.settings import Settings, load_settings


def _settings_or_exit(**overrides: object) -> Settings:
    try:
        return load_settings(**overrides)
    except ValidationError as exc:
        print("floodgate: invalid settings:", file=sys.stderr)
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            env = f"FLOODGATE_{field.upper()}" if err["loc"] else field
            print(f"  {env}: {err['msg']}", file=sys.stderr)
        raise SystemExit(2) from None


def _serve(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {"host": args.host, "port": args.port}
    if args.workers is not None:
        overrides["workers"] = args.workers
    settings = _settings_or_exit(**overrides)
    _warn_development_defaults(settings)
    if settings.workers > 1 and not args.reload:
        return _exec_gunicorn(settings)
    import uvicorn

    from floodgate.process.worker import server_options

    uvicorn.run(
        "floodgate.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        reload=args.reload,
        reload_dirs=[str(Path(__file__).parent.parent)] if args.reload else None,
        loop="uvloop",
        access_log=False,
        log_level=settings.log_level,
        timeout_graceful_shutdown=int(settings.graceful_timeout_s),
        server_header=False,
        **server_options(settings),  # http= (bounded request heads), proxy_headers=False
    )
    return 0


def _warn_development_defaults(settings: Settings) -> None:
    """Once per `serve`, before any worker starts: development defaults are easy to miss."""
    warnings = settings.development_defaults()
    if not warnings:
        return
    from floodgate.telemetry.logs import configure_logging

    configure_logging(settings.log_level)
    log = logging.getLogger("floodgate.settings")
    for warning in warnings:
        log.warning("%s", warning)


def _exec_gunicorn(settings: Settings) -> int:
    conf = Path(__file__).with_name("gunicorn_conf.py")
    env = dict(os.environ)
    env.update(
        FLOODGATE_HOST=settings.host,
        FLOODGATE_PORT=str(settings.port),
        FLOODGATE_WORKERS=str(settings.workers),
    )
    argv = [sys.executable, "-m", "gunicorn", "-c", str(conf), "floodgate.app:create_app()"]
    # exec: gunicorn becomes this process, so SIGTERM from Kubernetes reaches its arbiter.
    os.execve(sys.executable, argv, env)  # noqa: S606
    return 0  # pragma: no cover


def _migrate(args: argparse.Namespace) -> int:
    from floodgate.db.migrate import downgrade, upgrade
    from floodgate.domain import MIGRATIONS_DIR

    settings = _settings_or_exit()
    if args.downgrade:
        downgrade(settings.database_url, MIGRATIONS_DIR, args.revision or "base")
    else:
        upgrade(settings.database_url, MIGRATIONS_DIR, args.revision or "head")
    return 0


def _operator(args: argparse.Namespace) -> int:
    from floodgate.operator.run import run_operator

    settings = _settings_or_exit()
    namespaces = args.namespace or list(settings.operator_namespaces)
    run_operator(
        limits_url=settings.limits_url,
        namespaces=namespaces or None,
        liveness_endpoint=f"http://{args.liveness_host}:{args.liveness_port}/healthz",
    )
    return 0


def _worker(args: argparse.Namespace) -> int:
    settings = _settings_or_exit()
    if not settings.uses_shared_redis:
        print(
            "floodgate worker: jobs need the shared Redis (FLOODGATE_LIMITS_URL=redis://…); "
            "with memory:// the API runs them itself",
            file=sys.stderr,
        )
        return 2
    import uvloop

    from floodgate.process.jobs_worker import run_worker
    from floodgate.telemetry.logs import configure_logging

    configure_logging(settings.log_level)
    concurrency = args.concurrency or settings.jobs_concurrency
    admin = (args.metrics_host, args.metrics_port) if args.metrics_port else None
    uvloop.run(run_worker(settings, args.queue or ["default"], concurrency, admin=admin))
    return 0


def _policy_validate(args: argparse.Namespace) -> int:
    from floodgate.ratelimit.cli import validate_command

    return validate_command(Path(args.file), sys.stdout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="floodgate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the API (uvicorn; gunicorn when --workers > 1)")
    serve.add_argument("--host", default=os.environ.get("FLOODGATE_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("FLOODGATE_PORT", "8000")))
    serve.add_argument("--workers", type=int, default=None, help="default: FLOODGATE_WORKERS or 1")
    serve.add_argument("--reload", action="store_true", help="restart on code changes (dev)")
    serve.set_defaults(func=_serve)

    migrate = sub.add_parser("migrate", help="apply database migrations (to head by default)")
    migrate.add_argument("revision", nargs="?", default=None)
    migrate.add_argument("--downgrade", action="store_true", help="downgrade (to base by default)")
    migrate.set_defaults(func=_migrate)

    operator = sub.add_parser(
        "operator", help="run the RateLimitPolicy operator (kopf, standalone, one replica)"
    )
    operator.add_argument(
        "--namespace", action="append", help="watch only this namespace (repeatable)"
    )
    operator.add_argument("--liveness-host", default="0.0.0.0")
    operator.add_argument("--liveness-port", type=int, default=8080)
    operator.set_defaults(func=_operator)

    worker = sub.add_parser(
        "worker", help="run jobs from the shared Redis's queue (SIGTERM: drain)"
    )
    worker.add_argument(
        "--concurrency", type=int, default=None, help="jobs in flight (FLOODGATE_JOBS_CONCURRENCY)"
    )
    worker.add_argument(
        "--queues", dest="queue", action="append", help="queue to consume (repeatable; default)"
    )
    worker.add_argument(
        "--metrics-host", default=os.environ.get("FLOODGATE_WORKER_METRICS_HOST", "127.0.0.1")
    )
    worker.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("FLOODGATE_WORKER_METRICS_PORT", "0")),
        help="serve /metrics and /healthz on this port (default: FLOODGATE_WORKER_METRICS_PORT; "
        "0: off)",
    )
    worker.set_defaults(func=_worker)

    policy = sub.add_parser("policy", help="work with RateLimitPolicy files")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    validate = policy_sub.add_parser("validate", help="check a policy file; exit 1 on errors")
    validate.add_argument("file")
    validate.set_defaults(func=_policy_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
