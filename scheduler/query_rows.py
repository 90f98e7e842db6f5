"""Rows → meaning: one pydantic model per shipped query, the one place its columns are typed.

A query's model is its output contract: the shipped SQL must select exactly these columns (a
test parses the SQL and compares), the mock source produces them, and every fetched result is
validated against it before it reaches the cache. A row that lacks a column, or carries a value
of the wrong type, is a :class:`RowShapeError` naming the query, the row and the column; the
refresher records it in the key's envelope (stale-if-error) and carries on.

Types follow what Dune's API returns: numbers as JSON numbers, timestamps as
``"2024-05-01 12:00:00.000 UTC"``, and the 256/160/128-bit integers of ``pool_swaps`` as decimal
strings (the SQL casts them to VARCHAR so no digit is lost; :data:`BigInt` parses them to Python
ints and writes them back as strings). Columns an aggregate can leave NULL (no swaps in the
window) are ``X | None``: the column must be there, its value may be null. Extra columns are
ignored, so a saved query may return more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
)

Row = dict[str, Any]


def _big_int(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return value


def _dune_time(value: Any) -> Any:
    # Dune writes "2024-05-01 12:00:00.000 UTC"; our own envelopes hold ISO-8601 with "Z".
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(" UTC"):
            text = text[: -len(" UTC")].replace(" ", "T") + "+00:00"
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return value


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


#: An integer of any size, sent by Dune as a decimal string; stored back as a string.
BigInt = Annotated[int, BeforeValidator(_big_int), PlainSerializer(str, return_type=str)]
#: A UTC timestamp in Dune's or ISO-8601 form; stored as ISO-8601 with ``Z``.
DuneTimestamp = Annotated[
    datetime, BeforeValidator(_dune_time), PlainSerializer(_iso, return_type=str)
]


class QueryRow(BaseModel):
    """Base of every row model. ``FEEDS`` says which agent inputs read the query."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    FEEDS: ClassVar[str] = "nothing in the agent yet (recorded in each episode's intel_snapshot)"


class GasRegimeRow(QueryRow):
    FEEDS: ClassVar[str] = (
        "regime **gas** component (`regime`); the simulator's gas cost (`gas_price_gwei`, "
        "`eth_price_usd` via MarketInputs)"
    )
    gas_price_gwei: float | None = Field(description="median gas price paid, last 30 min (gwei)")
    base_fee_gwei: float | None = Field(description="mean block base fee, last 30 min (gwei)")
    eth_price_usd: float | None = Field(description="latest WETH price (USD)")
    regime: str = Field(description="low < 15 gwei <= normal < 40 gwei <= high")


class PoolHealthScoreRow(QueryRow):
    FEEDS: ClassVar[str] = (
        "regime **vol** component (`volatility_daily`); the simulator's market (`price_usd`, "
        "`volatility_daily`, `volume_usd_24h`, `active_liquidity_usd` via MarketInputs)"
    )
    pool_address: str = Field(description="the pool, lower-case hex")
    price_usd: float | None = Field(description="USD price of the pool's volatile token")
    volatility_daily: float | None = Field(description="realised daily volatility (fraction)")
    volume_usd_24h: float | None = Field(description="USD volume of the last 24 h")
    active_liquidity_usd: float | None = Field(description="in-range liquidity over +-10 % (USD)")
    swap_count: int | None = Field(description="swaps in the window")
    health_score: float | None = Field(description="0-100: depth vs volume, calm")


class RebalanceHintRow(QueryRow):
    pool_address: str = Field(description="the pool, lower-case hex")
    suggested_width_pct: float | None = Field(description="range width to cover a +-1 sigma day")
    recenter: bool = Field(description="the price drifted > 2 sigma of the window's ticks")
    confidence: float | None = Field(description="0-1, from the number of swaps seen")


class DynamicFeeAnalysisRow(QueryRow):
    fee_pips: int | None = Field(description="the pool's fee tier (1e-6)")
    volume_usd: float | None = Field(description="USD volume in the window")
    fees_usd: float | None = Field(description="fees earned by LPs in the window (USD)")
    fee_apr_pct: float | None = Field(description="annualised fees / in-range liquidity (%)")


class FeeTierOptRow(QueryRow):
    fee_pips: int = Field(description="fee tier of this pool of the pair")
    pool_address: str = Field(description="that pool, lower-case hex")
    volume_usd: float | None = Field(description="its USD volume in the window")
    volume_share: float | None = Field(description="its share of the pair's volume (0-1)")
    fees_usd: float | None = Field(description="its fees in the window (USD)")
    fee_apr_pct: float | None = Field(description="annualised fees / its in-range liquidity (%)")


class LiquidityDepthRow(QueryRow):
    depth_usd_1pct: float | None = Field(description="liquidity within +-1 % of price (USD)")
    depth_usd_2pct: float | None = Field(description="liquidity within +-2 % of price (USD)")
    current_tick: int | None = Field(description="the pool's tick after its latest swap")


class LiquidityCompetitionRow(QueryRow):
    lp_count: int = Field(description="distinct LP accounts minting in the window")
    top10_share: float | None = Field(description="share of minted liquidity by the top 10 (0-1)")
    mints: int = Field(description="Mint events in the window")
    burns: int | None = Field(description="Burn events (non-zero) in the window")


class RangeEfficiencyRow(QueryRow):
    median_width_pct: float | None = Field(description="median width of new positions (%)")
    in_range_pct: float | None = Field(description="new positions containing the price (%)")
    positions: int = Field(description="positions minted in the window")


class MevRiskRow(QueryRow):
    sandwich_rate: float | None = Field(description="share of trades that were sandwiched (0-1)")
    sandwiched_volume_usd: float | None = Field(description="victims' USD volume")
    sandwiched_trades: int = Field(description="victim trades in the window")
    trades: int = Field(description="all trades in the window")


class ToxicFlowRow(QueryRow):
    FEEDS: ClassVar[str] = "regime **flow** component (`toxic_share`: toxic at >= 0.25)"
    toxic_share: float | None = Field(description="share of volume with a winning 5 min markout")
    informed_volume_usd: float | None = Field(description="that volume (USD)")
    volume_usd: float | None = Field(description="all volume matched to a markout (USD)")
    swaps: int = Field(description="swaps with a markout")


class JitMonitorRow(QueryRow):
    jit_share: float | None = Field(description="share of volume in blocks with JIT liquidity")
    jit_events: int = Field(description="same-block mint+burn of one range")
    jit_volume_usd: float | None = Field(description="volume in those blocks (USD)")


class PoolMetricsRow(QueryRow):
    volume_usd: float | None = Field(description="USD volume in the window")
    fees_usd: float | None = Field(description="LP fees in the window (USD)")
    swap_count: int = Field(description="trades in the window")
    unique_traders: int = Field(description="distinct transaction senders")
    avg_trade_usd: float | None = Field(description="mean trade size (USD)")


class PoolSwapsRow(QueryRow):
    FEEDS: ClassVar[str] = "the replayed market (Swap events in the pool's own order)"
    block_time: DuneTimestamp = Field(description="block timestamp (UTC)")
    block_number: int = Field(description="block number")
    log_index: int = Field(description="the event's log index in the block (evt_index)")
    tx_hash: str = Field(description="transaction hash, hex")
    amount0: BigInt = Field(description="int256 token0 delta of the pool, decimal string")
    amount1: BigInt = Field(description="int256 token1 delta of the pool, decimal string")
    sqrt_price_x96: BigInt = Field(description="uint160 sqrt price after the swap, decimal string")
    liquidity: BigInt = Field(description="uint128 in-range liquidity, decimal string")
    tick: int = Field(description="int24 tick after the swap")


class IlTrackerRow(QueryRow):
    il_pct_window: float | None = Field(description="full-range IL over the window (%)")
    il_pct_7d: float | None = Field(description="full-range IL over 7 days (%)")
    il_pct_30d: float | None = Field(description="full-range IL over 30 days (%)")
    price_change_pct_7d: float | None = Field(description="pool price change, 7 days (%)")
    price_change_pct_30d: float | None = Field(description="pool price change, 30 days (%)")


class LiquidityMigrationRow(QueryRow):
    pool_address: str = Field(description="pool, lower-case hex")
    token_pair: str | None = Field(description="e.g. USDC-WETH")
    minted_usd: float | None = Field(description="USD added in 7 days")
    burned_usd: float | None = Field(description="USD removed in 7 days")
    net_flow_usd: float | None = Field(description="added - removed (USD)")


class PairCorrelationRow(QueryRow):
    symbol_a: str = Field(description="first token")
    symbol_b: str = Field(description="second token")
    correlation: float | None = Field(description="correlation of hourly log returns, 30 days")
    hours: int = Field(description="hours compared")


class LpCohortReturnsRow(QueryRow):
    cohort_month: str = Field(description="month of the cohort's first mint (date)")
    lps: int = Field(description="LP accounts in the cohort")
    minted_usd: float | None = Field(description="USD minted")
    burned_usd: float | None = Field(description="USD burned")
    collected_usd: float | None = Field(description="USD collected")
    fee_return_pct: float | None = Field(description="(collected - burned) / minted (%)")


class FeeRevenueLeaderboardRow(QueryRow):
    pool_address: str = Field(description="pool, lower-case hex")
    token_pair: str | None = Field(description="e.g. USDC-WETH")
    fee_pips: int = Field(description="fee tier (1e-6)")
    volume_usd: float | None = Field(description="USD volume, 7 days")
    fees_usd: float | None = Field(description="LP fees, 7 days (USD)")


class WhalePositionsRow(QueryRow):
    lp_address: str = Field(description="transaction sender, lower-case hex")
    pool_address: str = Field(description="pool, lower-case hex")
    token_pair: str | None = Field(description="e.g. USDC-WETH")
    tick_lower: int = Field(description="range lower tick")
    tick_upper: int = Field(description="range upper tick")
    amount_usd: float | None = Field(description="USD added")
    block_time: DuneTimestamp = Field(description="when (UTC)")


class StablecoinFlowsRow(QueryRow):
    symbol: str = Field(description="USDC, USDT or DAI")
    cex_inflow_usd: float | None = Field(description="into exchange addresses, 24 h")
    cex_outflow_usd: float | None = Field(description="out of exchange addresses, 24 h")
    net_cex_flow_usd: float | None = Field(description="inflow - outflow")


class StakingFlowsRow(QueryRow):
    day: str = Field(description="UTC date")
    staked_eth: float | None = Field(description="ETH deposited to staking")
    withdrawn_eth: float | None = Field(description="ETH withdrawn (full + partial)")
    net_staked_eth: float | None = Field(description="staked - withdrawn")


class BridgeFlowsRow(QueryRow):
    other_chain: str = Field(description="the chain on the other side")
    inflow_usd: float | None = Field(description="bridged into Ethereum, 24 h")
    outflow_usd: float | None = Field(description="bridged out of Ethereum, 24 h")
    net_inflow_usd: float | None = Field(description="inflow - outflow")


class CexDexSpreadRow(QueryRow):
    hour: DuneTimestamp = Field(description="hour (UTC)")
    dex_price_usd: float | None = Field(description="WETH volume-weighted DEX price")
    reference_price_usd: float | None = Field(description="WETH price in prices.usd")
    spread_bps: float | None = Field(description="DEX over reference (basis points)")
    volume_usd: float | None = Field(description="DEX volume in the hour (USD)")


class VolatilitySurfaceRow(QueryRow):
    horizon: str = Field(description="1h, 6h, 24h, 7d or 30d")
    hours: int = Field(description="horizon in hours")
    realized_vol_daily: float | None = Field(description="realised daily volatility (fraction)")
    samples: int = Field(description="minute returns used")


class RegimeHistoryRow(QueryRow):
    day: str = Field(description="UTC date")
    base_fee_gwei: float | None = Field(description="mean base fee (gwei)")
    gas_regime: str = Field(description="low / normal / high")
    volatility_daily: float | None = Field(description="WETH realised daily volatility")
    vol_regime: str = Field(description="low / mid / high")


ROW_MODELS: Mapping[str, type[QueryRow]] = {
    "gas_regime": GasRegimeRow,
    "pool_health_score": PoolHealthScoreRow,
    "rebalance_hint": RebalanceHintRow,
    "dynamic_fee_analysis": DynamicFeeAnalysisRow,
    "fee_tier_opt": FeeTierOptRow,
    "liquidity_depth": LiquidityDepthRow,
    "liquidity_competition": LiquidityCompetitionRow,
    "range_efficiency": RangeEfficiencyRow,
    "mev_risk": MevRiskRow,
    "toxic_flow": ToxicFlowRow,
    "jit_monitor": JitMonitorRow,
    "pool_metrics": PoolMetricsRow,
    "pool_swaps": PoolSwapsRow,
    "il_tracker": IlTrackerRow,
    "liquidity_migration": LiquidityMigrationRow,
    "pair_correlation": PairCorrelationRow,
    "lp_cohort_returns": LpCohortReturnsRow,
    "fee_revenue_leaderboard": FeeRevenueLeaderboardRow,
    "whale_positions": WhalePositionsRow,
    "stablecoin_flows": StablecoinFlowsRow,
    "staking_flows": StakingFlowsRow,
    "bridge_flows": BridgeFlowsRow,
    "cex_dex_spread": CexDexSpreadRow,
    "volatility_surface": VolatilitySurfaceRow,
    "regime_history": RegimeHistoryRow,
}


class RowShapeError(ValueError):
    """A result does not match its query's row model; the message names query and column."""

    def __init__(self, query: str, row: int, column: str, problem: str) -> None:
        super().__init__(f"{query}: row {row}: column {column!r}: {problem}")
        self.query = query
        self.row = row
        self.column = column


def parse_rows(query: str, rows: Sequence[Any]) -> list[QueryRow]:
    """Typed rows of ``query``; :class:`RowShapeError` for the first bad row.

    ``KeyError`` for a query that has no model (an operator's own saved query).
    """
    model = ROW_MODELS[query]
    parsed = []
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise RowShapeError(query, index, "*", f"expected an object, got {type(row).__name__}")
        try:
            parsed.append(model.model_validate(row))
        except ValidationError as exc:
            error = exc.errors()[0]
            column = ".".join(str(part) for part in error["loc"]) or "*"
            if error["type"] == "missing":
                problem = "missing"
            else:
                problem = f"{error['msg']}, got {str(error.get('input'))[:60]!r}"
            raise RowShapeError(query, index, column, problem) from None
    return parsed


def normalise_rows(query: str, rows: Sequence[Any]) -> list[Row]:
    """The rows as the cache stores them: validated, typed, JSON-ready (model columns only).

    Rows of a query without a model (an operator's saved query) pass through unchanged.
    """
    if query not in ROW_MODELS:
        return [row for row in rows]
    return [row.model_dump(mode="json") for row in parse_rows(query, rows)]


def columns(query: str) -> dict[str, str]:
    """Column name → DuneSQL type of ``query``'s output, in order (for docs and tests)."""
    model = ROW_MODELS[query]
    out = {}
    for name, info in model.model_fields.items():
        out[name] = _sql_type(info.annotation, info.metadata)
    return out


def _sql_type(annotation: Any, metadata: list[Any]) -> str:
    text = repr(annotation)
    if any(isinstance(m, PlainSerializer) and m.func is str for m in metadata) or "BigInt" in text:
        return "VARCHAR (decimal integer)"
    if "datetime" in text:
        return "TIMESTAMP"
    for py, sql in (
        ("bool", "BOOLEAN"),
        ("int", "BIGINT"),
        ("float", "DOUBLE"),
        ("str", "VARCHAR"),
    ):
        if py in text:
            return sql
    return "?"
