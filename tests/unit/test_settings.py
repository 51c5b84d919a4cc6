"""Settings: defaults, environment parsing, and refusal of values that make no sense."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from floodgate.process.cli import main
from floodgate.settings import Settings


def test_embedded_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("FLOODGATE_DATABASE_URL", "FLOODGATE_CACHE_URL", "FLOODGATE_LIMITS_URL"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings()
    assert settings.database_url == "sqlite+aiosqlite:///./floodgate.db"
    assert settings.cache_url == "memory://"
    assert settings.limits_url == "memory://"
    assert settings.is_sqlite


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOODGATE_DATABASE_URL", "postgres://u:p@db:5432/app")
    monkeypatch.setenv("FLOODGATE_TRUSTED_PROXIES", "10.0.0.0/8, fd00::/8")
    monkeypatch.setenv("FLOODGATE_CACHE_URL", "redis://127.0.0.1:6379/0")
    settings = Settings()
    assert settings.database_url == "postgresql+asyncpg://u:p@db:5432/app"
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.0/8", "fd00::/8"]
    assert not settings.is_sqlite


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"database_url": "mysql://x/y"}, "unsupported database URL scheme"),
        ({"database_url": "not a url"}, "unsupported database URL scheme"),
        ({"cache_url": "memcached://x"}, "unsupported store URL scheme"),
        ({"trusted_proxies": "10.0.0.0/33"}, "trusted_proxies"),
        ({"db_pool_size": 0}, "db_pool_size"),
        ({"default_page_size": 50, "max_page_size": 20}, "default_page_size"),
        ({"environment": "production"}, "FLOODGATE_CURSOR_SECRET"),
        ({"environment": "production", "cursor_secret": "short"}, "FLOODGATE_CURSOR_SECRET"),
        ({"policy_file": "/nonexistent/policy.yaml"}, "does not exist"),
    ],
)
def test_nonsense_is_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**overrides)  # type: ignore[arg-type]


def test_production_accepts_a_real_secret() -> None:
    settings = Settings(environment="production", cursor_secret="s" * 40)  # type: ignore[arg-type]
    assert settings.environment == "production"


def test_cli_reports_bad_settings_by_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("FLOODGATE_DATABASE_URL", "mysql://nope")
    with pytest.raises(SystemExit) as exited:
        main(["migrate"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "FLOODGATE_DATABASE_URL" in err
    assert "unsupported database URL scheme" in err
    assert "Traceback" not in err


def test_request_head_limits_have_defaults_and_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert (settings.max_header_bytes, settings.max_headers, settings.header_timeout_s) == (
        16 * 1024,
        100,
        10.0,
    )
    monkeypatch.setenv("FLOODGATE_MAX_HEADER_BYTES", "8192")
    monkeypatch.setenv("FLOODGATE_MAX_HEADERS", "50")
    monkeypatch.setenv("FLOODGATE_HEADER_TIMEOUT_S", "2.5")
    assert (Settings().max_header_bytes, Settings().max_headers) == (8192, 50)
    assert Settings().header_timeout_s == 2.5
    for field, bad in (("max_header_bytes", 100), ("max_headers", 0), ("header_timeout_s", 0)):
        with pytest.raises(ValidationError, match=field):
            Settings(**{field: bad})  # type: ignore[arg-type]


def test_the_development_secret_is_warned_about_outside_production() -> None:
    (warning,) = Settings().development_defaults()
    assert "development cursor secret" in warning
    assert "FLOODGATE_ENVIRONMENT=production" in warning
    assert Settings(cursor_secret="s" * 32).development_defaults() == []  # type: ignore[arg-type]
    production = Settings(environment="production", cursor_secret="s" * 32)  # type: ignore[arg-type]
    assert production.development_defaults() == []


def test_serve_logs_the_development_secret_warning_before_starting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import logging

    import uvicorn

    root = logging.getLogger()
    # configure_logging replaces the root's handlers and level: put them back afterwards.
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    started: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: started.append(kw))
    for var in ("FLOODGATE_CURSOR_SECRET", "FLOODGATE_ENVIRONMENT", "FLOODGATE_WORKERS"):
        monkeypatch.delenv(var, raising=False)
    assert main(["serve", "--port", "0", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert '"level":"warning"' in out
    assert "development cursor secret" in out
    # And the server is started without its own proxy-header handling, with bounded heads.
    (options,) = started
    assert options["proxy_headers"] is False
    assert options["http"].__name__ == "ConfiguredProtocol"  # type: ignore[attr-defined]
