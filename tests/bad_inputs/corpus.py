"""The bad-input corpus: each case is an input and the fragment its clear error must contain
(the field or variable at fault, and where useful the reason). Cases are data; the tests in
this folder feed them through the real entry points."""

from __future__ import annotations

from dataclasses import dataclass, field

POOL = "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640"


@dataclass(frozen=True)
class Case:
    name: str
    given: object
    expect: tuple[str, ...]  # every fragment must appear in the error
    extra: dict[str, object] = field(default_factory=dict)


# -- configuration values: (variables set) -> one stderr line, exit 2 ------------------------
CONFIG = [
    Case("hb_env_unknown", {"HB_ENV": "prod"}, ("HB_ENV", "prod")),
    Case("mock_clmm_not_bool", {"MOCK_CLMM": "maybe"}, ("MOCK_CLMM", "maybe")),
    Case("learn_from_mock_2", {"LEARN_FROM_MOCK": "2"}, ("LEARN_FROM_MOCK", "'2'")),
    Case("exec_mode_unknown", {"EXEC_MODE": "turbo"}, ("EXEC_MODE", "turbo")),
    Case("exec_mode_contradiction", {"EXEC_MODE": "real"}, ("EXEC_MODE", "contradicts")),
    Case(
        "exec_mode_vs_mock_clmm",
        {"EXEC_MODE": "real", "HB_ENV": "real", "MOCK_CLMM": "true"},
        ("EXEC_MODE", "MOCK_CLMM=true"),
    ),
    Case("intel_source_unknown", {"INTEL_DATA_SOURCE": "web"}, ("INTEL_DATA_SOURCE", "web")),
    Case("seed_not_int", {"HB_SEED": "abc"}, ("HB_SEED", "abc")),
    Case("episodes_zero", {"EPISODES": "0"}, ("EPISODES", "greater than or equal to 1")),
    Case("episodes_negative", {"EPISODES": "-3"}, ("EPISODES", "-3")),
    Case("live_risk_not_verbatim", {"I_UNDERSTAND_LIVE_RISK": "YES"}, ("I_UNDERSTAND_LIVE_RISK",)),
    Case("dune_url_ftp", {"DUNE_API_BASE_URL": "ftp://x"}, ("DUNE_API_BASE_URL", "ftp://x")),
    Case("gateway_url_bare", {"GATEWAY_URL": "localhost"}, ("GATEWAY_URL", "localhost")),
    Case("listen_port_range", {"CLMMD_HTTP_LISTEN": "127.0.0.1:99999"}, ("CLMMD_HTTP_LISTEN",)),
    Case(
        "listen_garbage", {"CLMMD_HTTP_LISTEN": "everywhere"}, ("CLMMD_HTTP_LISTEN", "everywhere")
    ),
    Case("pools_short", {"CLMMD_POOLS": "0x123"}, ("CLMMD_POOLS", "0x123")),
    Case("pools_path", {"CLMMD_POOLS": "../../etc/passwd"}, ("CLMMD_POOLS", "../../etc/passwd")),
    Case("workers_zero", {"CLMMD_REFRESH_WORKERS": "0"}, ("CLMMD_REFRESH_WORKERS",)),
    Case("pool_cap_huge", {"CLMMD_POOL_CAP": "1000"}, ("CLMMD_POOL_CAP",)),
    Case("log_level_loud", {"CLMMD_LOG_LEVEL": "loud"}, ("CLMMD_LOG_LEVEL", "loud")),
    Case("risk_profile_factor", {"CLMMD_RISK_PROFILE": "vol=high:2"}, ("CLMMD_RISK_PROFILE",)),
    Case("risk_profile_key", {"CLMMD_RISK_PROFILE": "moon=full:0.5"}, ("CLMMD_RISK_PROFILE",)),
    Case("reward_weight_unknown", {"CLMMD_REWARD_WEIGHTS": "bogus=1"}, ("CLMMD_REWARD_WEIGHTS",)),
    Case("reward_weight_nan", {"CLMMD_REWARD_WEIGHTS": "pnl=abc"}, ("CLMMD_REWARD_WEIGHTS",)),
    Case("cache_too_small", {"CLMMD_CACHE_SIZE_MB": "1"}, ("CLMMD_CACHE_SIZE_MB",)),
    Case("execute_rpm_zero", {"DUNE_EXECUTE_RPM": "0"}, ("DUNE_EXECUTE_RPM",)),
    Case("dune_timeout_neg", {"DUNE_TIMEOUT_S": "-1"}, ("DUNE_TIMEOUT_S",)),
    Case("enable_unknown_query", {"CLMMD_ENABLE_QUERIES": "no_such_query"}, ("no_such_query",)),
    Case(
        "enable_and_disable",
        {"CLMMD_ENABLE_QUERIES": "mev_risk", "CLMMD_DISABLE_QUERIES": "mev_risk"},
        ("mev_risk", "both"),
    ),
    Case("dune_without_key", {"INTEL_DATA_SOURCE": "dune"}, ("DUNE_API_KEY", "NOT SET")),
    Case("market_unknown", {"CLMMD_MARKET": "crystal-ball"}, ("CLMMD_MARKET", "crystal-ball")),
    Case(
        "replay_fee_protocol_3", {"CLMMD_REPLAY_FEE_PROTOCOL": "3"}, ("CLMMD_REPLAY_FEE_PROTOCOL",)
    ),
    Case(
        "replay_market_in_real_mode",
        {"CLMMD_MARKET": "replay", "HB_ENV": "real"},
        ("CLMMD_MARKET='replay'", "'real'"),
    ),
    Case("config_file_missing", {"CLMMD_CONFIG_FILE": "{tmp}/nope.toml"}, ("nope.toml",)),
    Case(
        "config_file_bad_toml",
        {"CLMMD_CONFIG_FILE": "{tmp}/bad.toml"},
        ("invalid configuration",),
        {"file": "this is = = not toml"},
    ),
    Case(
        "config_file_bad_value",
        {"CLMMD_CONFIG_FILE": "{tmp}/bad.toml"},
        ("EPISODES",),
        {"file": "episodes = 'many'"},
    ),
]

# -- CLI arguments: argv -> exit 2 with one line naming the argument ---------------------------
CLI = [
    Case("episodes_zero", ["campaign", "--episodes", "0"], ("--episodes", "'0'")),
    Case("episodes_text", ["campaign", "--episodes", "ten"], ("--episodes", "'ten'")),
    Case("seed_text", ["campaign", "--seed", "x"], ("--seed",)),
    Case("run_workers_99", ["run", "--workers", "99"], ("--workers", "1..16")),
    Case("run_pool_cap_0", ["run", "--pool-cap", "0"], ("--pool-cap",)),
    Case("unknown_command", ["frobnicate"], ("frobnicate",)),
    Case("unknown_flag", ["status", "--colour"], ("--colour",)),
    Case("refresh_needs_once", ["refresh"], ("--once",)),
    Case("trigger_missing_reason", ["trigger", "refresh", "--pool", POOL], ("--reason",)),
    Case(
        "trigger_bad_pool",
        ["trigger", "refresh", "--reason", "x", "--pool", "0xnothex"],
        ("pool_address", "0xnothex"),
    ),
    Case(
        "trigger_path_pool",
        ["trigger", "refresh", "--reason", "x", "--pool", "../../etc/passwd"],
        ("pool_address", "../../etc/passwd"),
    ),
    Case(
        "trigger_bad_priority",
        ["trigger", "refresh", "--reason", "x", "--pool", POOL, "--priorities", "P9"],
        ("priorities", "P9"),
    ),
    Case(
        "trigger_blank_reason",
        ["trigger", "refresh", "--reason", "  ", "--pool", POOL],
        ("reason",),
    ),
    Case("trigger_count_zero", ["trigger", "episodes", "--count", "0"], ("--count",)),
    Case("trigger_count_huge", ["trigger", "episodes", "--count", "20000"], ("count", "20000")),
    Case("runs_show_unknown", ["runs", "show", "no_such_run"], ("no_such_run",)),
    Case(
        "backtest_from_text",
        [
            "backtest",
            "--pool",
            POOL,
            "--from",
            "yesterday",
            "--to",
            "1714608000",
            "--width-pct",
            "5",
            "--size-usd",
            "1000",
        ],
        ("--from", "'yesterday'"),
    ),
    Case(
        "backtest_no_size",
        [
            "backtest",
            "--pool",
            POOL,
            "--from",
            "2024-05-01",
            "--to",
            "2024-05-02",
            "--width-pct",
            "5",
        ],
        ("--size-usd",),
    ),
    Case(
        "backtest_liquidity_float",
        [
            "backtest",
            "--pool",
            POOL,
            "--from",
            "2024-05-01",
            "--to",
            "2024-05-02",
            "--width-pct",
            "5",
            "--liquidity",
            "1e20",
        ],
        ("--liquidity", "'1e20'"),
    ),
    Case(
        "backtest_ticks_and_width",
        [
            "backtest",
            "--pool",
            POOL,
            "--from",
            "2024-05-01",
            "--to",
            "2024-05-02",
            "--width-pct",
            "5",
            "--lower-tick",
            "0",
            "--size-usd",
            "1000",
        ],
        ("--width-pct", "not both"),
    ),
    Case(
        "backtest_empty_window",
        [
            "backtest",
            "--pool",
            POOL,
            "--from",
            "2024-05-02",
            "--to",
            "2024-05-01",
            "--width-pct",
            "5",
            "--size-usd",
            "1000",
        ],
        ("empty window", "--to 2024-05-01T00:00:00Z"),
    ),
    Case(
        "backtest_nothing_stored",
        [
            "backtest",
            "--pool",
            POOL,
            "--from",
            "2024-05-01",
            "--to",
            "2024-05-02",
            "--width-pct",
            "5",
            "--size-usd",
            "1000",
        ],
        ("--pool", "not in", "--history FILE"),
    ),
    Case(
        "history_fetch_without_key",
        ["history", "fetch", "--pool", POOL, "--from", "2024-05-01", "--to", "2024-05-02"],
        ("DUNE_API_KEY", "NOT SET"),
    ),
    Case("runs_show_path", ["runs", "show", "../../etc"], ("../../etc",)),
]

# -- trigger lines: raw bytes -> rejected with a reason naming the field -----------------------
_REFRESH = '"type": "refresh", "reason": "r", "pool_address": "' + POOL + '"'
TRIGGER_LINES = [
    Case("not_json", b"refresh please", ("not JSON",)),
    Case("json_array", b'["refresh"]', ("array",)),
    Case("json_string", b'"refresh"', ("string",)),
    Case("json_number", b"42", ("number",)),
    Case("missing_type", b'{"count": 1}', ("'type'", "missing")),
    Case("unknown_type", b'{"type": "explode"}', ("'type'", "explode")),
    Case("type_wrong_kind", b'{"type": 7}', ("'type'", "7")),
    Case("count_string", b'{"type": "episodes", "count": "3"}', ("'count'", '"3"')),
    Case("count_zero", b'{"type": "episodes", "count": 0}', ("'count'", "0")),
    Case("count_huge", b'{"type": "episodes", "count": 10001}', ("'count'", "10001")),
    Case("count_bool", b'{"type": "episodes", "count": true}', ("'count'", "true")),
    Case("count_float", b'{"type": "episodes", "count": 2.5}', ("'count'", "2.5")),
    Case(
        "reason_missing",
        b'{"type": "refresh", "pool_address": "' + POOL.encode() + b'"}',
        ("'reason'",),
    ),
    Case(
        "reason_too_long",
        b'{"type": "refresh", "reason": "'
        + b"x" * 300
        + b'", "pool_address": "'
        + POOL.encode()
        + b'"}',
        ("'reason'",),
    ),
    Case(
        "pool_short",
        b'{"type": "refresh", "reason": "r", "pool_address": "0x123"}',
        ("'pool_address'", "0x123"),
    ),
    Case(
        "pool_path",
        b'{"type": "refresh", "reason": "r", "pool_address": "../../etc/passwd"}',
        ("'pool_address'", "../../etc/passwd"),
    ),
    Case(
        "pool_number",
        b'{"type": "refresh", "reason": "r", "pool_address": 12}',
        ("'pool_address'",),
    ),
    Case(
        "id_dotdot", ("{" + '"id": "../../etc", ' + _REFRESH + "}").encode(), ("'id'", "../../etc")
    ),
    Case("id_hidden", ("{" + '"id": ".hidden", ' + _REFRESH + "}").encode(), ("'id'", ".hidden")),
    Case("id_slash", ("{" + '"id": "a/b", ' + _REFRESH + "}").encode(), ("'id'", "a/b")),
    Case("id_too_long", ("{" + '"id": "' + "a" * 200 + '", ' + _REFRESH + "}").encode(), ("'id'",)),
    Case("id_number", ("{" + '"id": 5, ' + _REFRESH + "}").encode(), ("'id'", "5")),
    Case("id_nul", ("{" + '"id": "a\\u0000b", ' + _REFRESH + "}").encode(), ("'id'",)),
    Case(
        "ts_words", ("{" + '"ts": "yesterday", ' + _REFRESH + "}").encode(), ("'ts'", "yesterday")
    ),
    Case(
        "ts_no_zone", ("{" + '"ts": "2026-01-01T00:00:00", ' + _REFRESH + "}").encode(), ("'ts'",)
    ),
    Case(
        "priorities_p9",
        ("{" + '"priorities": ["P9"], ' + _REFRESH + "}").encode(),
        ("'priorities'", "P9"),
    ),
    Case(
        "priorities_string",
        ("{" + '"priorities": "P0", ' + _REFRESH + "}").encode(),
        ("'priorities'",),
    ),
    Case(
        "priorities_empty",
        ("{" + '"priorities": [], ' + _REFRESH + "}").encode(),
        ("'priorities'",),
    ),
    Case("binary_nul", b"\x00\x01\x02\xff binary", ("NUL",)),
    Case("not_utf8", b'{"type": "episodes", "count": 1, "x": "\xff\xfe"}', ("UTF-8",)),
    Case(
        "huge_line",
        b'{"type": "episodes", "count": 1, "pad": "' + b"p" * 70_000 + b'"}',
        ("limit",),
    ),
    Case("blank_line", b"   \t ", ("empty",)),
]

# -- registry TOML: file text -> RegistryError naming the query and field ----------------------
_GOOD = """
[queries.gas_regime]
query_id = 900001
method = "latest"
scope = "global"
priority = "P0"
ttl_seconds = 300
max_age_seconds = 1800
enabled = true
"""


def _query(**changes: str) -> str:
    lines = [line for line in _GOOD.strip().splitlines() if line.split(" = ")[0] not in changes]
    return "\n".join(lines + [f"{k} = {v}" for k, v in changes.items() if v != "<drop>"]) + "\n"


REGISTRY = [
    Case("not_toml", "[queries.x\nquery_id = ", ("invalid TOML",)),
    Case("top_level_key", _GOOD + "\ncolour = 'red'\n", ("colour",)),
    Case("no_queries", "# nothing\n", ("queries",)),
    Case("query_id_negative", _query(query_id="-5"), ("gas_regime", "query_id", "-5")),
    Case("query_id_string", _query(query_id='"abc"'), ("gas_regime", "query_id", "abc")),
    Case("method_unknown", _query(method='"fetch"'), ("gas_regime", "method", "fetch")),
    Case("scope_unknown", _query(scope='"world"'), ("gas_regime", "scope", "world")),
    Case("priority_p7", _query(priority='"P7"'), ("gas_regime", "priority", "P7")),
    Case("ttl_zero", _query(ttl_seconds="0"), ("gas_regime", "ttl_seconds")),
    Case("max_age_below_ttl", _query(max_age_seconds="100"), ("gas_regime", "max_age_seconds")),
    Case("enabled_string", _query(enabled='"yes"'), ("gas_regime", "enabled")),
    Case("windows_on_global", _query(windows='["1h"]'), ("gas_regime", "windows")),
    Case("unknown_field", _query(colour='"red"'), ("gas_regime", "colour")),
    Case("missing_query_id", _query(query_id="<drop>"), ("gas_regime", "query_id")),
    Case("bad_name", _GOOD.replace("gas_regime", "Gas-Regime"), ("Gas-Regime",)),
    Case(
        "pool_window_bad",
        _query(scope='"pool"', windows='["2x"]'),
        ("gas_regime", "windows"),
    ),
    Case(
        "parameters_pool_address",
        _query(scope='"pool"', windows='["1h"]', parameters='{pool_address = "0x1"}'),
        ("gas_regime", "parameters"),
    ),
]

# -- Dune responses: (endpoint answers) -> DuneError naming what was wrong ---------------------
# Each case scripts the fake answers: {"execute"|"status"|"results"|"latest": (status, body)}.
DUNE = [
    Case(
        "execute_no_id", {"execute": (200, b'{"state": "QUERY_STATE_PENDING"}')}, ("execution_id",)
    ),
    Case("execute_not_json", {"execute": (200, b"<html>ok</html>")}, ("malformed JSON",)),
    Case("execute_json_array", {"execute": (200, b"[1, 2]")}, ("malformed JSON",)),
    Case(
        "execute_402", {"execute": (402, b'{"error": "out of credits"}')}, ("HTTP 402", "credits")
    ),
    Case("execute_403_html", {"execute": (403, b"<h1>Forbidden</h1>")}, ("HTTP 403", "Forbidden")),
    Case("execute_500_empty", {"execute": (500, b"")}, ("HTTP 500",)),
    Case(
        "status_state_number",
        {"status": (200, b'{"state": 42}')},
        ("unknown execution state", "42"),
    ),
    Case("status_state_missing", {"status": (200, b"{}")}, ("unknown execution state",)),
    Case(
        "status_failed_with_error_object",
        {
            "status": (
                200,
                b'{"state": "QUERY_STATE_FAILED", "error": {"type": "T", "message": "boom"}}',
            )
        },
        ("failed", "boom"),
    ),
    Case(
        "status_failed_echoing_key",
        {"status": (200, b'{"state": "QUERY_STATE_FAILED", "error": {"message": "key {KEY}"}}')},
        ("failed", "***"),
    ),
    Case(
        "results_no_rows",
        {"results": (200, b'{"state": "QUERY_STATE_COMPLETED", "result": {}}')},
        ("no result rows",),
    ),
    Case(
        "results_rows_not_list",
        {"results": (200, b'{"state": "QUERY_STATE_COMPLETED", "result": {"rows": "many"}}')},
        ("no result rows",),
    ),
    Case(
        "results_paging_loop",
        {
            "results": (
                200,
                b'{"state": "QUERY_STATE_COMPLETED", "result": {"rows": []}, "next_offset": 0}',
            )
        },
        ("paging loops",),
    ),
    Case(
        "latest_404",
        {"latest": (404, b'{"error": "Query not found"}')},
        ("HTTP 404", "Query not found"),
    ),
    Case(
        "latest_401_echo",
        {"latest": (401, b'{"error": "bad key {KEY}"}')},
        ("HTTP 401", "***", "DUNE_API_KEY"),
    ),
    Case("latest_expired", {"latest": (200, b'{"state": "QUERY_STATE_EXPIRED"}')}, ("expired",)),
]

# -- Gateway responses: (model, body) -> GatewayResponseError naming the field -----------------
GATEWAY = [
    Case(
        "pool_missing_price",
        (
            "PoolInfo",
            {
                "address": POOL,
                "baseTokenAddress": "0x1",
                "quoteTokenAddress": "0x2",
                "feePct": 0.05,
            },
        ),
        ("price",),
    ),
    Case(
        "pool_price_text",
        (
            "PoolInfo",
            {
                "address": POOL,
                "baseTokenAddress": "0x1",
                "quoteTokenAddress": "0x2",
                "feePct": 0.05,
                "price": "abc",
            },
        ),
        ("price", "abc"),
    ),
    Case(
        "pool_price_nan",
        (
            "PoolInfo",
            {
                "address": POOL,
                "baseTokenAddress": "0x1",
                "quoteTokenAddress": "0x2",
                "feePct": 0.05,
                "price": "NaN",
            },
        ),
        ("price",),
    ),
    Case(
        "pool_fee_bool",
        (
            "PoolInfo",
            {
                "address": POOL,
                "baseTokenAddress": "0x1",
                "quoteTokenAddress": "0x2",
                "feePct": True,
                "price": 1,
            },
        ),
        ("feePct",),
    ),
    Case(
        "pool_missing_address",
        (
            "PoolInfo",
            {"baseTokenAddress": "0x1", "quoteTokenAddress": "0x2", "feePct": 0.05, "price": 1},
        ),
        ("address",),
    ),
    Case(
        "pool_tick_text",
        (
            "PoolInfo",
            {
                "address": POOL,
                "baseTokenAddress": "0x1",
                "quoteTokenAddress": "0x2",
                "feePct": 0.05,
                "price": 1,
                "activeBinId": "tick",
            },
        ),
        ("activeBinId",),
    ),
    Case("quote_missing_base", ("PositionQuote", {"quoteTokenAmount": 1}), ("baseTokenAmount",)),
    Case(
        "quote_amount_list",
        ("PositionQuote", {"baseTokenAmount": [1], "quoteTokenAmount": 1}),
        ("baseTokenAmount",),
    ),
    Case("position_missing_pool", ("PositionInfo", {"address": "0xpos"}), ("poolAddress",)),
    Case("write_no_signature", ("WriteResult", {"status": 1, "data": {}}), ("signature",)),
    Case(
        "write_status_text",
        ("WriteResult", {"signature": "0xabc", "status": "done"}),
        ("status", "done"),
    ),
]

ALL = {
    "config": CONFIG,
    "cli": CLI,
    "trigger_lines": TRIGGER_LINES,
    "registry": REGISTRY,
    "dune": DUNE,
    "gateway": GATEWAY,
}
