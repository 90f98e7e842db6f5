"""The configuration reference (docs/configuration.md), generated from the settings model.

A test compares the file with :func:`render_reference`, so the docs cannot drift from the code.
Regenerate with ``python -m service.config_docs > docs/configuration.md``.
"""

from __future__ import annotations

from pydantic import AliasChoices

from clmmd.service.config import SECRET_FIELDS, Settings

DESCRIPTIONS: dict[str, str] = {
    "HB_ENV": "top-level environment selector",
    "MOCK_CLMM": "forces mock execution whatever HB_ENV says",
    "EXEC_MODE": "derived (MOCK_CLMM=true → mock; else HB_ENV=real → real; else mock); an explicit "
    "value that contradicts the derivation is an error",
    "LEARN_FROM_MOCK": "allow learning updates from mock episodes",
    "INTEL_DATA_SOURCE": "where refreshes fetch from",
    "HB_SEED": "campaign seed; unset = random, logged and stored in run.json",
    "EPISODES": "episodes per campaign",
    "DUNE_API_KEY": "Dune API key (secret: never logged, never written to an artifact)",
    "I_UNDERSTAND_LIVE_RISK": "must be exactly `yes` before any live execution",
    "CLMMD_DATA_DIR": "runs, cache, trigger file, state (also `--data-dir`)",
    "DUNE_API_BASE_URL": "Dune API base URL (tests point it at a local fake server)",
    "GATEWAY_URL": "Hummingbot Gateway (real mode)",
    "CLMMD_HTTP_LISTEN": "status/metrics endpoint of the daemon, `host:port` or `off`",
    "CLMMD_LOG_LEVEL": "debug, info, warning or error",
    "CLMMD_EPISODE_WORKERS": "episodes running at once",
    "CLMMD_POOLS": "comma-separated pool addresses; the first is the campaign's pool, the first "
    "N (pool cap) are refreshed",
    "CLMMD_POSITION_SIZE_USD": "position size the agent proposes, before the risk scalar",
    "CLMMD_HORIZON_HOURS": "how long a position is held in an episode",
    "CLMMD_RISK_SCALAR": "fixed risk scalar in (0, 1] overriding the regime's",
    "CLMMD_DURABLE_WRITES": "fsync every artifact (turn off only for throwaway runs)",
    "CLMMD_FRESH_PCT_FLOOR": "learning gate: minimum intel fresh_pct to learn from an episode",
    "CLMMD_QUERIES_FILE": "an operator's queries.toml replacing the shipped catalogue",
    "CLMMD_ENABLE_QUERIES": "comma-separated query names to enable over the file's defaults",
    "CLMMD_DISABLE_QUERIES": "comma-separated query names to disable",
    "CLMMD_CACHE_SIZE_MB": "diskcache size limit (least recently stored evicted beyond it)",
    "DUNE_EXECUTE_RPM": "Dune execute calls per minute (free plan 15)",
    "DUNE_READ_RPM": "Dune status/results calls per minute (free plan 40)",
    "DUNE_TIMEOUT_S": "deadline of one Dune HTTP call",
    "DUNE_POLL_INTERVAL_S": "first wait between execution status polls (grows up to 5 s)",
    "CLMMD_REFRESH_INTERVAL_S": "daemon: seconds between refresh ticks",
    "CLMMD_REFRESH_WORKERS": "daemon: concurrent Dune fetches (also `--workers`)",
    "CLMMD_POOL_CAP": "daemon: how many active pools get pool-scoped refreshes (also `--pool-cap`)",
    "CLMMD_DRAIN_TIMEOUT_S": "daemon: on SIGTERM, how long running episodes may take to finish",
    "CLMMD_EPISODE_INTERVAL_S": "daemon: enqueue one episode every this many seconds (0 = only "
    "on `episodes` triggers)",
    "CLMMD_RISK_PROFILE": "risk-scalar factors per regime component over the defaults, e.g. "
    "`vol=high:0.5,flow=toxic:0.4`",
    "CLMMD_REWARD_WEIGHTS": "reward weights, e.g. `pnl=1,fees=1,gas=1,range=0.5`",
    "GATEWAY_WALLET_ADDRESS": "real mode: the wallet Gateway signs with (required for real mode)",
    "CLMMD_MAX_POSITION_USD": "real mode: cap on the deployed position size in USD (required "
    "for real mode)",
    "GATEWAY_CHAIN": "real mode: Gateway chain name",
    "GATEWAY_NETWORK": "real mode: Gateway network name",
    "GATEWAY_CONNECTOR": "real mode: Gateway connector",
    "GATEWAY_SLIPPAGE_PCT": "real mode: slippage tolerance sent with writes",
    "GATEWAY_CA_FILE": "real mode: CA bundle that signed Gateway's certificate (HTTPS)",
    "GATEWAY_CLIENT_CERT_FILE": "real mode: client certificate for Gateway (HTTPS)",
    "GATEWAY_CLIENT_KEY_FILE": "real mode: client key for Gateway (HTTPS)",
    "GATEWAY_API_KEY": "real mode: Gateway API key if it requires one (secret)",
    "GATEWAY_READ_TIMEOUT_S": "real mode: deadline of a Gateway read",
    "GATEWAY_WRITE_TIMEOUT_S": "real mode: deadline of a Gateway write",
    "CLMMD_REFRESH_DEADLINE_S": "deadline of one whole refresh of a key (execute, poll, pages)",
}


def variables() -> list[tuple[str, str, object]]:
    """(variable, field name, default) for every setting, in model order."""
    out = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        variable = str(alias.choices[0]) if isinstance(alias, AliasChoices) else name.upper()
        out.append((variable, name, field.get_default(call_default_factory=True)))
    return out


def _default(name: str, value: object) -> str:
    if name in SECRET_FIELDS or value is None:
        return "unset"
    if isinstance(value, dict):
        return ",".join(f"{k}={v:g}" for k, v in value.items()) or "(none)"
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "(none)"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def render_reference() -> str:
    lines = [
        "# Configuration",
        "",
        "Generated from `service/config.py` by `python -m service.config_docs`; a test keeps it",
        "in step. Sources, highest first: command-line flags, environment variables, a `.env`",
        "file in the working directory, the TOML file named by `CLMMD_CONFIG_FILE` (keys are the",
        "variable names, e.g. `EPISODES = 20`), defaults. Booleans accept true/false/1/0/yes/no",
        "in any case. A bad value stops start-up with one line naming the variable and the",
        "value, exit status 2.",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    for variable, name, default in variables():
        lines.append(f"| `{variable}` | `{_default(name, default)}` | {DESCRIPTIONS[variable]} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_reference(), end="")
