"""Settings of the daemon: environment variables, a ``.env`` file and an optional TOML file.

Precedence (highest first): explicit overrides from the CLI, environment variables, ``.env``,
the TOML file named by ``CLMMD_CONFIG_FILE``, defaults. Every invalid value stops start-up with
one line naming the variable and the value (:class:`ConfigError`; the CLI exits with status 2).

Strict on purpose, because a setting that is silently ignored looks like one that works: an
unknown key in the TOML file or the ``.env`` file, and an unknown ``CLMMD_*`` variable, are
errors naming the file and line and suggesting the closest known name; ``nan`` and ``inf`` are
refused for every number; a secret holding a newline or a control character is refused (the
message names the variable, never the value); the status endpoint listens beyond loopback only
when ``CLMMD_HTTP_ALLOW_REMOTE=yes`` says so.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ExecMode = Literal["mock", "real"]

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
_HOST_PORT = re.compile(r"^(?P<host>[A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})$")
_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")

#: Variables whose value is never shown: logs and the config summary say set / NOT SET.
SECRET_FIELDS = frozenset({"dune_api_key", "gateway_api_key", "chain_rpc_url"})
#: ``CLMMD_*`` variables that are not settings but are known: the config file's name, and the
#: test suite's switches (a developer's shell may export them while running clmmd).
OTHER_VARIABLES = frozenset(
    {
        "CLMMD_CONFIG_FILE",
        "CLMMD_LONG_TESTS",
        "CLMMD_RELIABILITY_FIGURES",
        "CLMMD_REQUIRE_EVM",
        "CLMMD_NPM_CACHE",
        "CLMMD_E2E",
        "CLMMD_E2E_CACHE",
        "CLMMD_GATEWAY_E2E_DIR",
    }
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ConfigError(Exception):
    """A bad configuration value; ``str()`` is the one line the operator sees."""


def parse_bool(value: object) -> bool:
    """true/false/1/0/yes/no in any case; anything else is an error quoting the value."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected one of true/false/1/0/yes/no, got {value!r}")


def _env(name: str) -> Any:
    # validation_alias makes the variable name the only accepted key, so error locations
    # name the variable the operator actually set.
    return Field(validation_alias=AliasChoices(name, name.lower()))


class Settings(BaseSettings):
    """The effective configuration. Field docs double as the environment variable reference."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=False,
        extra="ignore",  # unknown keys are reported by load_settings, naming file and line
        populate_by_name=True,
        allow_inf_nan=False,
    )

    hb_env: ExecMode = Field(
        "mock",
        description="top-level environment selector",
        validation_alias=AliasChoices("HB_ENV", "hb_env"),
    )
    mock_clmm: bool = Field(
        False,
        description="forces mock execution whatever HB_ENV says",
        validation_alias=AliasChoices("MOCK_CLMM", "mock_clmm"),
    )
    exec_mode_requested: ExecMode | None = Field(
        None,
        description=(
            "derived (MOCK_CLMM=true → mock; else HB_ENV=real → real; else mock); an explicit "
            "value that contradicts the derivation is an error"
        ),
        validation_alias=AliasChoices("EXEC_MODE", "exec_mode"),
    )
    learn_from_mock: bool = Field(
        False,
        description="allow learning updates from mock episodes",
        validation_alias=AliasChoices("LEARN_FROM_MOCK", "learn_from_mock"),
    )
    intel_data_source: Literal["mock", "dune"] = Field(
        "mock",
        description="where refreshes fetch from",
        validation_alias=AliasChoices("INTEL_DATA_SOURCE", "intel_data_source"),
    )
    seed: int | None = Field(
        None,
        description="campaign seed; unset = random, logged and stored in run.json",
        validation_alias=AliasChoices("HB_SEED", "hb_seed"),
    )
    episodes: int = Field(
        1,
        ge=1,
        description="episodes per campaign",
        validation_alias=AliasChoices("EPISODES", "episodes"),
    )
    dune_api_key: SecretStr | None = Field(
        None,
        description="Dune API key (secret: never logged, never written to an artifact)",
        validation_alias=AliasChoices("DUNE_API_KEY", "dune_api_key"),
    )
    live_risk_ack: str | None = Field(
        None,
        description="must be exactly `yes` before any live execution",
        validation_alias=AliasChoices("I_UNDERSTAND_LIVE_RISK", "i_understand_live_risk"),
    )
    data_dir: Path = Field(
        Path("data"),
        description="runs, cache, trigger file, state (also `--data-dir`)",
        validation_alias=AliasChoices("CLMMD_DATA_DIR", "clmmd_data_dir"),
    )
    dune_api_base_url: str = Field(
        "https://api.dune.com/api/v1",
        description="Dune API base URL (tests point it at a local fake server)",
        validation_alias=AliasChoices("DUNE_API_BASE_URL", "dune_api_base_url"),
    )
    gateway_url: str = Field(
        "http://localhost:15888",
        description="Hummingbot Gateway (real mode)",
        validation_alias=AliasChoices("GATEWAY_URL", "gateway_url"),
    )
    http_listen: str = Field(
        "127.0.0.1:9321",
        description="status/metrics endpoint of the daemon, `host:port` or `off`",
        validation_alias=AliasChoices("CLMMD_HTTP_LISTEN", "clmmd_http_listen"),
    )
    http_allow_remote: bool = Field(
        False,
        description=(
            "let `CLMMD_HTTP_LISTEN` name a non-loopback address (the status document "
            "describes the deployment: expose it deliberately)"
        ),
        validation_alias=AliasChoices("CLMMD_HTTP_ALLOW_REMOTE"),
    )
    # --- operational knobs beyond SPEC's table (all CLMMD_*) ---
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info",
        description="debug, info, warning or error",
        validation_alias=AliasChoices("CLMMD_LOG_LEVEL", "clmmd_log_level"),
    )
    episode_workers: int = Field(
        4,
        ge=1,
        le=64,
        description="episodes running at once",
        validation_alias=AliasChoices("CLMMD_EPISODE_WORKERS"),
    )
    pools: Annotated[tuple[str, ...], NoDecode] = Field(
        ("0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640",),
        description=(
            "comma-separated pool addresses; the first is the campaign's pool, the first N (pool "
            "cap) are refreshed"
        ),
        validation_alias=AliasChoices("CLMMD_POOLS", "clmmd_pools"),
    )
    position_size_usd: float = Field(
        10_000.0,
        gt=0,
        description="position size the agent proposes, before the risk scalar",
        validation_alias=AliasChoices("CLMMD_POSITION_SIZE_USD"),
    )
    horizon_hours: float = Field(
        24.0,
        gt=0,
        le=24 * 30,
        description="how long a position is held in an episode",
        validation_alias=AliasChoices("CLMMD_HORIZON_HOURS"),
    )
    risk_scalar_override: float | None = Field(
        None,
        gt=0,
        le=1,
        description="fixed risk scalar in (0, 1] overriding the regime's",
        validation_alias=AliasChoices("CLMMD_RISK_SCALAR"),
    )
    durable_writes: bool = Field(
        True,
        description="fsync every artifact (turn off only for throwaway runs)",
        validation_alias=AliasChoices("CLMMD_DURABLE_WRITES"),
    )
    fresh_pct_floor: float = Field(
        50.0,
        ge=0,
        le=100,
        description="learning gate: minimum intel fresh_pct to learn from an episode",
        validation_alias=AliasChoices("CLMMD_FRESH_PCT_FLOOR"),
    )
    queries_file: Path | None = Field(
        None,
        description="an operator's queries.toml replacing the shipped catalogue",
        validation_alias=AliasChoices("CLMMD_QUERIES_FILE"),
    )
    enable_queries: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="comma-separated query names to enable over the file's defaults",
        validation_alias=AliasChoices("CLMMD_ENABLE_QUERIES"),
    )
    disable_queries: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="comma-separated query names to disable",
        validation_alias=AliasChoices("CLMMD_DISABLE_QUERIES"),
    )
    cache_size_mb: int = Field(
        256,
        ge=8,
        le=1_000_000,
        description="diskcache size limit (least recently stored evicted beyond it)",
        validation_alias=AliasChoices("CLMMD_CACHE_SIZE_MB"),
    )
    # --- Dune plan, pace and credits (kept together; see docs/dune-client.md) ---
    dune_plan: Literal["free", "plus", "premium", "enterprise"] = Field(
        "free",
        description=(
            "Dune plan: sets the per-minute limits (free 15/40, plus 70/200, premium and "
            "enterprise 350/1000 execute/read) and the credits per MB of results read"
        ),
        validation_alias=AliasChoices("DUNE_PLAN"),
    )
    dune_execute_rpm: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="Dune execute calls per minute; unset = the plan's (overrides DUNE_PLAN)",
        validation_alias=AliasChoices("DUNE_EXECUTE_RPM"),
    )
    dune_read_rpm: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="Dune status/results calls per minute; unset = the plan's",
        validation_alias=AliasChoices("DUNE_READ_RPM"),
    )
    dune_rate_headroom: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="share of each Dune rate limit left unused (arrival jitter margin)",
        validation_alias=AliasChoices("DUNE_RATE_HEADROOM"),
    )
    dune_rate_window_margin_s: float = Field(
        2.0,
        ge=0,
        le=60,
        description="seconds added to Dune's 60 s rate-limit window on our side",
        validation_alias=AliasChoices("DUNE_RATE_WINDOW_MARGIN_S"),
    )
    dune_performance: Literal["medium", "large"] = Field(
        "medium",
        description="Dune engine for executions (large costs more credits)",
        validation_alias=AliasChoices("DUNE_PERFORMANCE"),
    )
    dune_credit_budget_per_day: float | None = Field(
        None,
        ge=0,
        description=(
            "Dune credits the daemon may spend per UTC day; over it P3 keys are skipped first, "
            "then P2, P1, P0 (unset = no budget)"
        ),
        validation_alias=AliasChoices("DUNE_CREDIT_BUDGET_PER_DAY"),
    )
    dune_credits_per_mb: float | None = Field(
        None,
        ge=0,
        description="credits per MB of results read; unset = the plan's (free 20, others 2)",
        validation_alias=AliasChoices("DUNE_CREDITS_PER_MB"),
    )
    dune_timeout_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="deadline of one Dune HTTP call",
        validation_alias=AliasChoices("DUNE_TIMEOUT_S"),
    )
    dune_poll_interval_s: float = Field(
        1.0,
        ge=0.01,
        le=60,
        description="first wait between execution status polls (grows up to 5 s)",
        validation_alias=AliasChoices("DUNE_POLL_INTERVAL_S"),
    )
    refresh_deadline_s: float = Field(
        300.0,
        gt=0,
        le=3600,
        description="deadline of one whole refresh of a key (execute, poll, pages)",
        validation_alias=AliasChoices("CLMMD_REFRESH_DEADLINE_S"),
    )

    refresh_interval_s: float = Field(
        60.0,
        ge=1,
        le=86_400,
        description="daemon: seconds between refresh ticks",
        validation_alias=AliasChoices("CLMMD_REFRESH_INTERVAL_S"),
    )
    refresh_workers: int = Field(
        3,
        ge=1,
        le=16,
        description="daemon: concurrent Dune fetches (also `--workers`)",
        validation_alias=AliasChoices("CLMMD_REFRESH_WORKERS"),
    )
    pool_cap: int = Field(
        3,
        ge=1,
        le=100,
        description="daemon: how many active pools get pool-scoped refreshes (also `--pool-cap`)",
        validation_alias=AliasChoices("CLMMD_POOL_CAP"),
    )
    drain_timeout_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="daemon: on SIGTERM, how long running episodes may take to finish",
        validation_alias=AliasChoices("CLMMD_DRAIN_TIMEOUT_S"),
    )
    episode_interval_s: float = Field(
        0.0,
        ge=0,
        le=86_400 * 7,
        description=(
            "daemon: enqueue one episode every this many seconds (0 = only on `episodes` triggers)"
        ),
        validation_alias=AliasChoices("CLMMD_EPISODE_INTERVAL_S"),
    )

    risk_profile: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=dict,
        description=(
            "risk-scalar factors per regime component over the defaults, e.g. "
            "`vol=high:0.5,flow=toxic:0.4`"
        ),
        validation_alias=AliasChoices("CLMMD_RISK_PROFILE"),
    )
    reward_weights: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=lambda: {"pnl": 1.0, "fees": 1.0, "gas": 1.0, "range": 0.5},
        description="reward weights, e.g. `pnl=1,fees=1,gas=1,range=0.5`",
        validation_alias=AliasChoices("CLMMD_REWARD_WEIGHTS"),
    )

    @field_validator("risk_profile", "reward_weights", mode="before")
    @classmethod
    def _mapping(cls, value: object) -> object:
        # "gas=high:0.8,vol=high:0.6" for the risk profile, "pnl=1,fees=1" for weights.
        if not isinstance(value, str):
            return value
        out: dict[str, float] = {}
        for part in (p.strip() for p in value.split(",") if p.strip()):
            key, sep, number = part.rpartition(":") if ":" in part else part.partition("=")
            try:
                out[key.strip()] = float(number)
            except ValueError:
                raise ValueError(
                    f"expected name{':' if ':' in part else '='}number, got {part!r}"
                ) from None
            if not sep:
                raise ValueError(f"expected name=number, got {part!r}")
        return out

    @field_validator("reward_weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        allowed = {"pnl", "fees", "gas", "range"}
        unknown = set(value) - allowed
        if unknown:
            raise ValueError(
                f"unknown reward weight(s) {sorted(unknown)}, expected {sorted(allowed)}"
            )
        merged = {"pnl": 1.0, "fees": 1.0, "gas": 1.0, "range": 0.5, **value}
        if any(v < 0 for v in merged.values()):
            raise ValueError(f"reward weights must be >= 0, got {merged}")
        return merged

    @field_validator("risk_profile")
    @classmethod
    def _profile(cls, value: dict[str, float]) -> dict[str, float]:
        for key, scalar in value.items():
            if not re.fullmatch(r"(gas|vol|flow)=[a-z_]+", key):
                raise ValueError(f"risk profile key must look like 'vol=high', got {key!r}")
            if not 0 < scalar <= 1:
                raise ValueError(f"risk profile factor for {key!r} must be in (0, 1], got {scalar}")
        return value

    # --- the market of mock execution ---
    market: Literal["synthetic", "replay"] = Field(
        "synthetic",
        description=(
            "market of mock execution: `synthetic` (seeded price path and volume) or `replay` "
            "(windows of the pool's real Swap history, fees as the pool computes them; "
            "docs/replay.md)"
        ),
        validation_alias=AliasChoices("CLMMD_MARKET"),
    )
    replay_history: Path | None = Field(
        None,
        description=(
            "replay market: a CSV or Parquet Swap history of the campaign's pool to replay "
            "instead of the one stored in `<data_dir>/history` (`clmmd history fetch`)"
        ),
        validation_alias=AliasChoices("CLMMD_REPLAY_HISTORY"),
    )
    replay_fee_protocol: int = Field(
        0,
        description=(
            "replay market: the pool's protocol fee switch, 0 (off) or N in 4..10 (the protocol "
            "keeps 1/N of every fee); Swap events do not carry it"
        ),
        validation_alias=AliasChoices("CLMMD_REPLAY_FEE_PROTOCOL"),
    )

    @field_validator("replay_fee_protocol")
    @classmethod
    def _fee_protocol(cls, value: int) -> int:
        if value != 0 and not 4 <= value <= 10:
            raise ValueError(f"must be 0 or 4..10, got {value}")
        return value

    @field_validator("market", mode="before")
    @classmethod
    def _market(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    # --- real mode (Hummingbot Gateway) ---
    gateway_wallet_address: str | None = Field(
        None,
        description="real mode: the wallet Gateway signs with (required for real mode)",
        validation_alias=AliasChoices("GATEWAY_WALLET_ADDRESS"),
    )
    max_position_usd: float | None = Field(
        None,
        gt=0,
        description="real mode: cap on the deployed position size in USD (required for real mode)",
        validation_alias=AliasChoices("CLMMD_MAX_POSITION_USD"),
    )
    gateway_chain: str = Field(
        "ethereum",
        description="real mode: Gateway chain name",
        validation_alias=AliasChoices("GATEWAY_CHAIN"),
    )
    gateway_network: str = Field(
        "mainnet",
        description="real mode: Gateway network name",
        validation_alias=AliasChoices("GATEWAY_NETWORK"),
    )
    gateway_connector: str = Field(
        "uniswap",
        description="real mode: Gateway connector",
        validation_alias=AliasChoices("GATEWAY_CONNECTOR"),
    )
    gateway_slippage_pct: float = Field(
        1.0,
        gt=0,
        le=50,
        description="real mode: slippage tolerance sent with writes",
        validation_alias=AliasChoices("GATEWAY_SLIPPAGE_PCT"),
    )
    gateway_approval_policy: Literal["exact", "unlimited", "never"] = Field(
        "exact",
        description=(
            "real mode: ERC-20 approvals for the position manager before an open: exact (the "
            "amounts of this open), unlimited (Gateway's default, max uint256) or never (skip "
            "the episode on the allowance gate)"
        ),
        validation_alias=AliasChoices("GATEWAY_APPROVAL_POLICY"),
    )
    gateway_sample_interval_s: float = Field(
        300.0,
        gt=0,
        description="real mode: how often the pool price is sampled while a position is held",
        validation_alias=AliasChoices("GATEWAY_SAMPLE_INTERVAL_S"),
    )
    chain_rpc_url: SecretStr | None = Field(
        None,
        description=(
            "real mode: read-only node URL for transaction receipts (secret: provider URLs embed "
            "keys); unset = the node Gateway reports in /chains/<chain>/status"
        ),
        validation_alias=AliasChoices("CLMMD_CHAIN_RPC_URL"),
    )
    gateway_ca_file: Path | None = Field(
        None,
        description="real mode: CA bundle that signed Gateway's certificate (HTTPS)",
        validation_alias=AliasChoices("GATEWAY_CA_FILE"),
    )
    gateway_client_cert_file: Path | None = Field(
        None,
        description="real mode: client certificate for Gateway (HTTPS)",
        validation_alias=AliasChoices("GATEWAY_CLIENT_CERT_FILE"),
    )
    gateway_client_key_file: Path | None = Field(
        None,
        description="real mode: client key for Gateway (HTTPS)",
        validation_alias=AliasChoices("GATEWAY_CLIENT_KEY_FILE"),
    )
    gateway_api_key: SecretStr | None = Field(
        None,
        description="real mode: Gateway API key if it requires one (secret)",
        validation_alias=AliasChoices("GATEWAY_API_KEY"),
    )
    gateway_read_timeout_s: float = Field(
        15.0,
        gt=0,
        le=600,
        description="real mode: deadline of a Gateway read",
        validation_alias=AliasChoices("GATEWAY_READ_TIMEOUT_S"),
    )
    gateway_write_timeout_s: float = Field(
        180.0,
        gt=0,
        le=3600,
        description="real mode: deadline of a Gateway write",
        validation_alias=AliasChoices("GATEWAY_WRITE_TIMEOUT_S"),
    )

    @field_validator("gateway_wallet_address")
    @classmethod
    def _wallet(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"0x[0-9a-fA-F]{40}", value.strip()):
            raise ValueError(f"not a 0x-prefixed 20-byte hex address: {value!r}")
        return value.strip() if value else None

    @field_validator("enable_queries", "disable_queries", mode="before")
    @classmethod
    def _names(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(p.strip() for p in value.split(",") if p.strip())
        return value

    @field_validator(*sorted(SECRET_FIELDS), mode="before")
    @classmethod
    def _secret(cls, value: object) -> object:
        # A pasted key with its newline would be sent in a header (or refused there with the
        # key in the error text): refuse it here, without ever showing it.
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str) and _CONTROL.search(text):
            raise ValueError(
                "contains a newline or another control character (not shown); remove it"
            )
        return value

    @field_validator(
        "mock_clmm", "learn_from_mock", "durable_writes", "http_allow_remote", mode="before"
    )
    @classmethod
    def _bool(cls, value: object) -> bool:
        return parse_bool(value)

    @field_validator(
        "hb_env", "exec_mode_requested", "intel_data_source", "log_level", mode="before"
    )
    @classmethod
    def _lower(cls, value: object) -> object:
        if isinstance(value, str):
            stripped = value.strip().lower()
            return stripped or None
        return value

    @field_validator("live_risk_ack", mode="before")
    @classmethod
    def _ack(cls, value: object) -> object:
        # Verbatim on purpose: "true", "YES" or "y" are a sign of a misunderstanding, and
        # silently treating them as "not acknowledged" would leave the operator puzzled.
        if value is None or value == "":
            return None
        if value != "yes":
            raise ValueError(f"must be exactly 'yes' to acknowledge live risk, got {value!r}")
        return value

    @field_validator("pools", mode="before")
    @classmethod
    def _pools(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(p.strip() for p in value.split(",") if p.strip())
        if isinstance(value, (list, tuple)):
            for pool in value:
                if not re.fullmatch(r"0x[0-9a-fA-F]{40}", str(pool)):
                    raise ValueError(f"not a 0x-prefixed 20-byte hex address: {pool!r}")
            if not value:
                raise ValueError("at least one pool address is required")
        return value

    @field_validator("dune_api_base_url", "gateway_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not _URL.match(value):
            raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("http_listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        if value.strip().lower() == "off":
            return "off"
        match = _HOST_PORT.match(value.strip())
        if not match or not 0 < int(match["port"]) < 65536:
            raise ValueError(f"expected host:port or 'off', got {value!r}")
        return value.strip()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            env_settings,
            dotenv_settings,
            file_secret_settings,
        ]
        config_file = os.environ.get("CLMMD_CONFIG_FILE")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    # --- derived values ---

    @property
    def exec_mode(self) -> ExecMode:
        """MOCK_CLMM=true → mock; else HB_ENV=real → real; else mock (SPEC's derivation)."""
        return derive_exec_mode(self.hb_env, self.mock_clmm)

    @property
    def http_listen_address(self) -> tuple[str, int] | None:
        if self.http_listen == "off":
            return None
        host, _, port = self.http_listen.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def http_listen_is_loopback(self) -> bool:
        """Whether the status endpoint stays on this machine (off counts as yes)."""
        address = self.http_listen_address
        return address is None or is_loopback(address[0])

    def effective(self) -> dict[str, Any]:
        """The configuration as logged at start: secrets reduced to ``set``/``NOT SET``."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name in SECRET_FIELDS:
                out[name] = "set" if value is not None else "NOT SET"
            elif isinstance(value, Path):
                out[name] = str(value)
            elif isinstance(value, tuple):
                out[name] = list(value)
            else:
                out[name] = value
        out["exec_mode"] = self.exec_mode
        return out

    def config_hash(self) -> str:
        """sha256 (16 hex chars) of the effective configuration.

        The seed, episode count and data dir are left out: they are recorded on their own in
        each episode's metadata and do not change how an episode behaves.
        """
        shaping = {
            k: v
            for k, v in self.effective().items()
            if k not in {"seed", "episodes", "data_dir", "log_level", "http_listen"}
        }
        blob = orjson.dumps(shaping, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(blob).hexdigest()[:16]


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP literal; any other name may resolve anywhere."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def derive_exec_mode(hb_env: ExecMode, mock_clmm: bool) -> ExecMode:
    """SPEC's derivation table, as a pure function."""
    if mock_clmm:
        return "mock"
    return "real" if hb_env == "real" else "mock"


def _secret_variables() -> set[str]:
    """The variable names of :data:`SECRET_FIELDS` (their values are never shown)."""
    out: set[str] = set()
    for name in SECRET_FIELDS:
        alias = Settings.model_fields[name].validation_alias
        if isinstance(alias, AliasChoices):
            out.update(str(choice).upper() for choice in alias.choices)
    return out


def _variable_name(loc: tuple[int | str, ...]) -> str:
    first = str(loc[0]) if loc else "?"
    field = Settings.model_fields.get(first)
    if field is not None and isinstance(field.validation_alias, AliasChoices):
        return str(field.validation_alias.choices[0])
    return first.upper()


def _one_line(exc: ValidationError, raw: dict[str, Any]) -> str:
    parts = []
    for err in exc.errors():
        name = _variable_name(err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        value = err.get("input")
        shown = "<hidden>" if name in _secret_variables() else repr(value)
        if "got" in msg:
            parts.append(f"{name}: {msg}")
        else:
            parts.append(f"{name}={shown}: {msg}")
    return "invalid configuration: " + "; ".join(parts)


def load_settings(**overrides: Any) -> Settings:
    """Build :class:`Settings`; raise :class:`ConfigError` with one line on any bad value.

    ``overrides`` are CLI flags (by field name); ``None`` values are ignored so an absent flag
    does not mask the environment.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    config_file = os.environ.get("CLMMD_CONFIG_FILE")
    if config_file and not Path(config_file).is_file():
        # pydantic-settings skips a missing TOML file silently: the operator's settings would
        # be ignored without a word.
        raise ConfigError(f"invalid configuration: CLMMD_CONFIG_FILE={config_file!r}: no such file")
    # systemd credentials (LoadCredential=) are files named after the setting, e.g.
    # $CREDENTIALS_DIRECTORY/dune_api_key: pydantic-settings' secrets directory, below the
    # environment and .env in precedence.
    credentials = os.environ.get("CREDENTIALS_DIRECTORY") or None
    check_known_names(Path(config_file) if config_file else None)
    try:
        settings = Settings(**given, _secrets_dir=credentials)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, given)) from None
    except (OSError, ValueError) as exc:  # unreadable/invalid TOML file, undecodable value
        raise ConfigError(f"invalid configuration: {exc}") from None
    if not settings.http_allow_remote and not settings.http_listen_is_loopback:
        raise ConfigError(
            f"invalid configuration: CLMMD_HTTP_LISTEN={settings.http_listen!r} "
            "is not a loopback address: /status describes the deployment; set "
            "CLMMD_HTTP_ALLOW_REMOTE=yes to expose it on purpose, or listen on 127.0.0.1"
        )
    if settings.market == "replay" and settings.exec_mode == "real":
        raise ConfigError(
            "invalid configuration: CLMMD_MARKET='replay' chooses the market of mock execution, "
            "but the derived mode is 'real'; unset CLMMD_MARKET or set HB_ENV=mock"
        )
    requested = settings.exec_mode_requested
    if requested is not None and requested != settings.exec_mode:
        raise ConfigError(
            f"invalid configuration: EXEC_MODE={requested!r} contradicts the derived mode "
            f"{settings.exec_mode!r} (MOCK_CLMM={str(settings.mock_clmm).lower()}, "
            f"HB_ENV={settings.hb_env!r}); unset EXEC_MODE or change HB_ENV/MOCK_CLMM"
        )
    return settings


# -- unknown names ------------------------------------------------------------------------


def known_names() -> dict[str, str]:
    """Every accepted name, upper-cased → the variable it is documented as."""
    names = {name: name for name in OTHER_VARIABLES}
    for field in Settings.model_fields.values():
        if isinstance(field.validation_alias, AliasChoices):
            primary = str(field.validation_alias.choices[0])
            for choice in field.validation_alias.choices:
                names[str(choice).upper()] = primary
    return names


def suggest(name: str) -> str:
    """`` (did you mean X?)`` for the closest known variable, or nothing."""
    primaries = sorted(set(known_names().values()))
    upper = name.upper()
    for candidate in (upper, f"CLMMD_{upper}"):
        match = difflib.get_close_matches(candidate, primaries, n=1, cutoff=0.75)
        if match:
            return f" (did you mean {match[0]}?)"
    return ""


def check_known_names(config_file: Path | None, env_file: Path = Path(".env")) -> None:
    """:class:`ConfigError` for the first unknown ``CLMMD_*`` variable (environment or
    ``.env``) or unknown key of the TOML ``config_file``, naming where it is."""
    known = known_names()
    for name in sorted(os.environ):
        if name.upper().startswith("CLMMD_") and name.upper() not in known:
            raise ConfigError(
                f"invalid configuration: unknown environment variable {name}{suggest(name)}"
            )
    for name, line in _dotenv_keys(env_file):
        if name.upper().startswith("CLMMD_") and name.upper() not in known:
            raise ConfigError(
                f"invalid configuration: {env_file}:{line}: unknown variable {name}{suggest(name)}"
            )
    if config_file is not None:
        for key, line in _toml_keys(config_file):
            if key.upper() not in known:
                raise ConfigError(
                    f"invalid configuration: {config_file}:{line}: unknown key {key!r}"
                    f"{suggest(key)}"
                )


def _dotenv_keys(path: Path) -> list[tuple[str, int]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []  # pydantic-settings reports an unreadable .env its own way
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        match = re.match(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=", raw)
        if match:
            out.append((match[1], number))
    return out


def _toml_keys(path: Path) -> list[tuple[str, int]]:
    """Top-level keys (and table names) of a TOML file with the line each is on."""
    try:
        text = path.read_text(encoding="utf-8")
        document = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"invalid configuration: {path}: {exc}") from None
    lines = text.splitlines()
    out = []
    for key in document:
        pattern = re.compile(rf"""\s*(\[\s*)?(["']?){re.escape(key)}\2\s*(=|\]|\.)""")
        number = next((n for n, raw in enumerate(lines, start=1) if pattern.match(raw)), 0)
        out.append((key, number))
    return out
