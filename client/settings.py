"""The client's settings, read once from the environment.

    FADEWATCH_URL    server address            (default http://127.0.0.1:8700)
    FADEWATCH_TOKEN  bearer token              (default: none)
    FADEWATCH_MODE   online | offline | disabled (default online)
    FADEWATCH_DIR    spool and local data      (default ~/.fadewatch)

``get_settings()`` caches the result; tests change the environment and call
``get_settings.cache_clear()``. Arguments to ``fadewatch.init`` override these values.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping
from pathlib import Path

from fadewatch.errors import UsageError

__all__ = ["MODES", "Settings", "get_settings"]

MODES = ("online", "offline", "disabled")
DEFAULT_URL = "http://127.0.0.1:8700"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Where the hook sends its records, and how."""

    url: str = DEFAULT_URL
    token: str | None = None
    mode: str = "online"
    dir: Path = Path("~/.fadewatch")

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", str(self.mode).strip().lower())
        if self.mode not in MODES:
            raise UsageError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        url = str(self.url).strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"the server URL must start with http:// or https://, got {self.url!r}")
        object.__setattr__(self, "url", url)
        object.__setattr__(self, "token", self.token or None)
        object.__setattr__(self, "dir", Path(self.dir).expanduser())

    @property
    def spool_dir(self) -> Path:
        """The folder that holds one spool per run."""
        return self.dir / "spool"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            url=env.get("FADEWATCH_URL") or DEFAULT_URL,
            token=env.get("FADEWATCH_TOKEN") or None,
            mode=env.get("FADEWATCH_MODE") or "online",
            dir=Path(env.get("FADEWATCH_DIR") or "~/.fadewatch"),
        )

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with the given non-None fields replaced."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read from the environment on first use."""
    return Settings.from_env()
