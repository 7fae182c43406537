"""How an OpenAI-compatible target is named and configured: the `openai:MODEL@BASE_URL` spec, the settings a
store keeps (`OpenAIConfig`, which never holds the key itself, only the name of the variable that does) and
the target id of a model on a server. Nothing here talks to a server or imports the SDK, so the CLI can
read a spec or list the kinds without loading either (core/targets/openai.py is the target itself)."""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from core.options import check_number

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
NO_KEY = "EMPTY"  # what local servers (vLLM, llama.cpp) accept when no key variable is set
ENDPOINTS = ("chat", "completions")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# The settings a person sets (`targets add` options, a run's generation settings) -> their option in core.options.
_OPTION_OF: dict[str, str] = {
    "max_new_tokens": "max-new-tokens", "temperature": "temperature", "seed": "seed",
    "max_concurrency": "max-concurrency", "requests_per_minute": "rpm", "tokens_per_minute": "tpm",
    "timeout_s": "timeout", "max_retries": "max-retries", "price_input_per_m": "price-input",
    "price_output_per_m": "price-output", "outage_failures": "outage-failures", "outage_window_s": "outage-window"}


@dataclass(frozen=True)
class OpenAIConfig:
    """Everything needed to talk to one model on one server; safe to store (no secret in it)."""

    model: str
    base_url: str = DEFAULT_BASE_URL
    api_key_env: str | None = DEFAULT_KEY_ENV
    endpoint: str = "chat"
    max_new_tokens: int = 64
    temperature: float = 0.0
    seed: int = 0
    max_concurrency: int = 16
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    timeout_s: float = 60.0  # one attempt, from sending to the last byte of the answer
    max_retries: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    deadline_s: float = 600.0  # one prompt, all attempts and backoffs together
    price_input_per_m: float | None = None  # currency units per 1M prompt tokens, for cost estimates
    price_output_per_m: float | None = None
    # The target is unreachable after this many consecutive connection failures (or the same 5xx) with no
    # answer in between (None: 2 x max_concurrency, at least 8), lasting at least outage_window_s.
    outage_failures: int | None = None
    outage_window_s: float = 20.0

    def __post_init__(self) -> None:
        check_base_url(self.base_url)
        if not self.model:
            raise ValueError("an openai target needs a model name")
        if self.api_key_env is not None and not _ENV_NAME.match(self.api_key_env):
            raise ValueError(f"api_key_env takes the NAME of an environment variable (e.g. {DEFAULT_KEY_ENV}), "
                             "not the key itself")
        if self.endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {', '.join(ENDPOINTS)}, got {self.endpoint!r}")
        for name, option in _OPTION_OF.items():  # the CLI's rules (core.options): finite, in range; OptionError
            value = getattr(self, name)
            if value is not None:
                check_number(option, value)
        for name in ("deadline_s", "backoff_base_s", "backoff_max_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")

    @property
    def outage_bound(self) -> int:
        """Consecutive server-wide failures after which (and the window) the target counts as unreachable."""
        return self.outage_failures if self.outage_failures is not None else max(8, 2 * self.max_concurrency)

    @classmethod
    def from_settings(cls, model: str, base_url: str | None, settings: dict[str, Any]) -> OpenAIConfig:
        """Build from stored settings, ignoring keys this version does not know (e.g. a stored batch size)."""
        known = {f.name for f in fields(cls)} - {"model", "base_url"}
        return cls(model=model, base_url=base_url or DEFAULT_BASE_URL,
                   **{k: v for k, v in settings.items() if k in known})

    def settings(self) -> dict[str, Any]:
        """What the store's `targets.settings` records: all but model and base URL (columns of their own)."""
        values = asdict(self)
        del values["model"], values["base_url"]
        return values


def check_base_url(url: str) -> None:
    """Reject URLs that could not work or that would carry a secret (user:password@ or a query string)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base URL {url!r} must start with http:// or https:// and name a host")
    if parts.username or parts.password or parts.query:
        raise ValueError("the base URL must not hold credentials or a query string: put the key in an environment "
                         "variable and name it with api_key_env")


def default_target_id(model: str, base_url: str) -> str:
    """`model@host:port`: the same model on two servers is two targets (they may answer differently)."""
    return f"{model}@{urlsplit(base_url).netloc}"


def parse_spec(spec: str) -> tuple[str, str]:
    """`openai:MODEL@BASE_URL` (or `openai:MODEL` for api.openai.com) -> (model, base_url)."""
    rest = spec.removeprefix("openai:")
    match = re.match(r"^(?P<model>.+?)@(?P<url>https?://.+)$", rest)
    model, url = (match["model"], match["url"]) if match else (rest, DEFAULT_BASE_URL)
    if not model or (not match and "@" in rest):
        raise ValueError(f"cannot read target {spec!r}: use openai:MODEL@http(s)://HOST[:PORT]/v1, "
                         "e.g. openai:gpt-4o-mini@https://api.openai.com/v1")
    return model, url.rstrip("/")
