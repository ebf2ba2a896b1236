"""Server settings: one pydantic-settings class, read from FADEWATCH_* variables."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fadewatch.protocol import limits

__all__ = ["ServerSettings", "get_settings", "default_database_url", "is_loopback_host"]


def default_data_dir() -> Path:
    return Path.home() / ".fadewatch"


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FADEWATCH_", extra="ignore")

    dir: Path = Field(default_factory=default_data_dir, description="Local data directory.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; a SQLite file under `dir` when unset."
    )
    host: str = "127.0.0.1"
    port: int = 8700
    public_url: str | None = Field(
        default=None, description="URL users open in a browser, used in links."
    )

    # Limits on what one request may carry (fadewatch.protocol.limits, which the hook and
    # the dashboard stay within: lower them only). Past max_body_bytes the answer is 413.
    max_body_bytes: int = limits.MAX_BODY_BYTES
    max_batch_records: int = limits.MAX_BATCH_RECORDS
    max_record_bytes: int = 1024 * 1024
    max_scalars_per_record: int = limits.MAX_SCALARS_PER_RECORD
    max_histograms_per_record: int = limits.MAX_HISTOGRAMS_PER_RECORD
    max_histogram_bins: int = limits.MAX_HISTOGRAM_BINS
    max_samples_per_record: int = limits.MAX_SAMPLES_PER_RECORD
    max_sample_chars: int = limits.MAX_SAMPLE_CHARS
    max_config_bytes: int = limits.MAX_CONFIG_BYTES

    # Requests a second per API token, or per client address in open mode (docs/server.md).
    rate_limit_per_s: float = Field(
        default=200.0, ge=0, description="Average API requests a second per token; 0 turns the limit off."
    )
    rate_limit_burst: int = Field(default=2_000, ge=1, description="Requests a token may make in a row.")
    # A kept-alive connection is closed after this many answers, so that busy senders spread
    # over the server's processes (server/http/connection_reuse.py).
    max_requests_per_connection: int = Field(
        default=20, ge=1, description="Answers on one kept-alive connection before it is closed."
    )

    # Reads.
    default_max_points: int = limits.DEFAULT_MAX_POINTS
    max_points_limit: int = limits.MAX_POINTS

    # The dashboard served at "/" (docs/dashboard.md).
    dashboard_refresh_s: float = Field(
        default=2.0, ge=0.25, le=3600, description="How often open dashboard pages fetch new steps."
    )

    # Alerts (docs/alerts.md).
    alert_rules_file: Path | None = Field(
        default=None, description="YAML file of alert rules (`fadewatch server --rules FILE`)."
    )
    alert_allow_loopback_targets: bool = Field(
        default=False, description="Let channels post to loopback addresses (local use, tests)."
    )
    alert_allow_private_targets: bool = Field(
        default=False, description="Let channels post to private, link-local and other non-public addresses."
    )
    alert_delivery_enabled: bool = Field(default=True, description="Run the delivery worker in this process.")
    alert_delivery_timeout_s: float = Field(default=10.0, gt=0, le=300)
    alert_delivery_backoff_base_s: float = Field(default=1.0, gt=0, le=3600)
    alert_delivery_backoff_max_s: float = Field(default=300.0, gt=0, le=86_400)
    alert_delivery_max_retry_after_s: float = Field(default=3600.0, ge=0, le=86_400)
    alert_delivery_max_age_s: float = Field(
        default=86_400.0, gt=0, description="Give a notification up after retrying this long."
    )
    alert_delivery_poll_s: float = Field(default=1.0, gt=0, le=60)
    alert_delivery_lease_s: float = Field(
        default=30.0, gt=0, le=3600, description="How long a claimed notification stays claimed by one worker."
    )

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> ServerSettings:
        # A send may take the timeout three times over (connecting, sending, waiting for the
        # answer). A lease that runs out sooner lets another server send the message again.
        if self.alert_delivery_lease_s < 3 * self.alert_delivery_timeout_s:
            raise ValueError(
                f"FADEWATCH_ALERT_DELIVERY_LEASE_S ({self.alert_delivery_lease_s:g}) must be at least 3 x "
                f"FADEWATCH_ALERT_DELIVERY_TIMEOUT_S ({self.alert_delivery_timeout_s:g})"
            )
        return self

    def resolved_database_url(self) -> str:
        return self.database_url or default_database_url(self.dir)

    def resolved_public_url(self) -> str:
        """Base of the links in notifications: public_url, or where this server listens."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def default_database_url(data_dir: Path) -> str:
    return f"sqlite:///{Path(data_dir).expanduser() / 'fadewatch.db'}"


def is_loopback_host(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@lru_cache
def get_settings() -> ServerSettings:
    return ServerSettings()
