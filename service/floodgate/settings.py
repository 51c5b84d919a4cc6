"""Process configuration from `FLOODGATE_*` environment variables, validated at start."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_DEV_CURSOR_SECRET = "floodgate-development-cursor-secret"  # noqa: S105 - refused in production
_DB_SCHEMES = {
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql+asyncpg": "postgresql+asyncpg",
    # Plain driver-less URLs as every hosting provider prints them: use the async driver.
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}
_STORE_SCHEMES = {"memory", "redis", "rediss", "unix"}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Settings(BaseSettings):
    """Every knob of the service; unsafe or contradictory values fail at start, clearly."""

    model_config = SettingsConfigDict(
        env_prefix="FLOODGATE_", env_file=None, extra="ignore", frozen=True
    )

    environment: Literal["development", "production"] = Field(
        default="development",
        description="production refuses development-only defaults (e.g. the cursor secret)",
    )
    database_url: str = "sqlite+aiosqlite:///./floodgate.db"
    # A fixed pool: overflow connections are closed when returned, so under sustained load they
    # are reopened all the time (measured: 283 new sessions in 3 s at 64 concurrent requests).
    db_pool_size: int = Field(default=20, ge=1, le=500)
    db_max_overflow: int = Field(default=0, ge=0, le=500)
    db_pool_timeout_s: float = Field(default=5.0, gt=0, le=120)
    db_statement_timeout_ms: int = Field(default=10_000, ge=0, description="0 = no limit")
    db_echo: bool = False
    # One sqlite3 connection per thread; reads there skip aiosqlite (see floodgate.db.sqlite_reads).
    db_sqlite_read_threads: int = Field(
        default=4, ge=0, le=64, description="SQLite file: threads for hot reads; 0 = aiosqlite"
    )

    cache_url: str = "memory://"
    cache_l1_max_entries: int = Field(default=10_000, ge=0, description="per process; 0 = no L1")
    cache_default_ttl_s: float = Field(default=30.0, gt=0, le=86_400)
    cache_timeout_s: float = Field(default=0.25, gt=0, le=10, description="per Redis call")
    cache_control: str = Field(
        default="no-cache", description="Cache-Control of cached responses (clients revalidate)"
    )
    limits_url: str = "memory://"
    policy_file: Path | None = None
    trusted_proxies: Annotated[tuple[Network, ...], NoDecode] = ()
    ratelimit_legacy_headers: bool = Field(
        default=False, description="also send X-RateLimit-Limit/Remaining/Reset"
    )
    ratelimit_timeout_s: float = Field(
        default=0.25, gt=0, le=10, description="per call to the limits Redis before failing"
    )
    operator_namespaces: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="namespaces the operator watches; empty = the whole cluster"
    )

    # Jobs: the queue is a Redis Stream in the shared Redis (FLOODGATE_LIMITS_URL), never the
    # cache sidecar; with `memory://` jobs run as tasks of the API process (development only).
    jobs_concurrency: int = Field(
        default=10, ge=1, le=1000, description="jobs in flight per worker process"
    )
    jobs_redelivery_timeout_s: float = Field(
        default=30.0, ge=1, le=3600, description="a crashed worker's job runs again after this"
    )
    jobs_max_deliveries: int = Field(default=5, ge=1, le=100, description="then dead-lettered")
    jobs_backoff_base_s: float = Field(default=1.0, gt=0, le=3600)
    jobs_backoff_max_s: float = Field(default=300.0, gt=0, le=86_400)
    jobs_max_age_s: float = Field(
        default=7 * 86_400, ge=60, description="stream entries older than this are trimmed"
    )
    jobs_reconcile_after_s: float = Field(
        default=300.0, ge=5, description="a row still queued this long gets its entry re-added"
    )
    jobs_import_max_body_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024, description="messages:import body"
    )

    cursor_secret: SecretStr = SecretStr(_DEV_CURSOR_SECRET)
    default_page_size: int = Field(default=10, ge=1)
    max_page_size: int = Field(default=100, ge=1, le=10_000)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=64 * 1024 * 1024)
    # Request heads (floodgate.process.protocol). 16 KiB is Node's default and twice gunicorn's
    # and Apache's per-field 8 KiB: room for large cookies and bearer tokens. 100 fields is
    # gunicorn's and Apache's default. 10 s is ample for any client, whose head fits in one
    # segment, and bounds how long a slow-header client holds a connection (slowloris).
    max_header_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="request target + header names and values; more is a 431",
    )
    max_headers: int = Field(default=100, ge=8, le=1000, description="header fields; more is a 431")
    header_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="a request head not complete by then: closed"
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    graceful_timeout_s: float = Field(default=20.0, gt=0, le=600)
    # Counted recycling restarts a busy worker every few seconds at this service's rates (cold
    # L1, new connections, dropped keep-alives), so it is off unless a leak calls for it.
    worker_max_requests: int = Field(
        default=0, ge=0, description="gunicorn: recycle a worker after about this many; 0 = never"
    )
    gc_freeze: bool = Field(
        default=True, description="freeze the start-up heap so full GC passes skip it (p99)"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in _DB_SCHEMES:
            known = ", ".join(sorted({*_DB_SCHEMES.values()}))
            raise ValueError(f"unsupported database URL scheme {scheme!r}; use one of: {known}")
        return f"{_DB_SCHEMES[scheme]}://{rest}"

    @field_validator("cache_url", "limits_url")
    @classmethod
    def _known_store(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in _STORE_SCHEMES:
            raise ValueError(
                f"unsupported store URL scheme {scheme!r}; use memory:// or redis://host:port/db"
            )
        return value

    @field_validator("trusted_proxies", "operator_namespaces", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("policy_file")
    @classmethod
    def _policy_file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"policy file {str(value)!r} does not exist or is not a file")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        if self.default_page_size > self.max_page_size:
            raise ValueError("default_page_size must not exceed max_page_size")
        if self.environment == "production":
            secret = self.cursor_secret.get_secret_value()
            if secret == _DEV_CURSOR_SECRET or len(secret) < 32:
                raise ValueError(
                    "FLOODGATE_CURSOR_SECRET must be set to a random value of at least 32 "
                    "characters in production (pages served by one pod must verify on another)"
                )
        return self

    def development_defaults(self) -> list[str]:
        """Warnings for development-only defaults in use outside production, logged at start."""
        if self.environment == "production":
            return []
        warnings: list[str] = []
        if self.cursor_secret.get_secret_value() == _DEV_CURSOR_SECRET:
            warnings.append(
                "running with the public development cursor secret: anyone can forge pagination "
                "cursors. Outside development set FLOODGATE_ENVIRONMENT=production, which "
                "requires FLOODGATE_CURSOR_SECRET (a random value of at least 32 characters)"
            )
        return warnings

    @property
    def uses_shared_redis(self) -> bool:
        """Limits (and the job queue) in a Redis shared by every pod, not in process memory."""
        return self.limits_url.startswith(("redis", "unix"))

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    # telemetry (tracing itself is configured by the standard OTEL_* variables)
    metrics_enabled: bool = Field(default=True, description="serve GET /metrics, record http_*")
    metrics_multiproc_dir: Path | None = Field(
        default=None,
        description="gunicorn: prometheus_client multiprocess directory, emptied at start "
        "(default: PROMETHEUS_MULTIPROC_DIR, else a fresh directory under /dev/shm)",
    )
    access_log_sample_rate: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="fraction of requests written to the JSON access log (5xx always, when > 0)",
    )


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; keyword overrides win (used by tests and the CLI)."""
    return Settings(**overrides)  # type: ignore[arg-type]
