"""The execution interface shared by the mock simulator and the real Gateway environment.

The episode runner builds an :class:`ExecutionRequest` from the agent's proposal and the intel
snapshot and hands it to a :class:`ClmmEnv`; whatever the environment, it answers with an
:class:`ExecutionOutcome`. Tests swap a fake environment in here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

#: Uniswap V3 fee tiers in pips (hundredths of a basis point) and their tick spacing.
TICK_SPACING_BY_FEE: dict[int, int] = {100: 1, 500: 10, 3000: 60, 10000: 200}


@dataclass(frozen=True)
class PoolSpec:
    """A Uniswap V3 pool as the agent and the executors see it.

    Prices inside Uniswap are token1 per token0 in raw units. ``stable_token`` names the token
    that is worth one US dollar (0 or 1), which is how USD values are computed in mock mode.
    ``reference_price_usd`` is the USD price of the other (volatile) token used when the intel
    snapshot has no price.
    """

    address: str
    pair: str
    token0: str
    token1: str
    decimals0: int
    decimals1: int
    fee_pips: int
    stable_token: Literal[0, 1]
    reference_price_usd: float
    chain: str = "ethereum"
    network: str = "mainnet"

    @property
    def tick_spacing(self) -> int:
        return TICK_SPACING_BY_FEE[self.fee_pips]

    @property
    def fee_fraction(self) -> float:
        return self.fee_pips / 1_000_000


#: Pools the mock mode knows (real mainnet addresses; the operator's own pools come from config).
KNOWN_POOLS: dict[str, PoolSpec] = {
    spec.address.lower(): spec
    for spec in (
        PoolSpec(
            address="0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640",
            pair="WETH-USDC",
            token0="USDC",
            token1="WETH",
            decimals0=6,
            decimals1=18,
            fee_pips=500,
            stable_token=0,
            reference_price_usd=3000.0,
        ),
        PoolSpec(
            address="0x8ad599c3A0ff1De082011EFDDc58f1908eb6e6D8",
            pair="WETH-USDC",
            token0="USDC",
            token1="WETH",
            decimals0=6,
            decimals1=18,
            fee_pips=3000,
            stable_token=0,
            reference_price_usd=3000.0,
        ),
        PoolSpec(
            address="0x11b815efB8f581194ae79006d24E0d814B7697F6",
            pair="WETH-USDT",
            token0="WETH",
            token1="USDT",
            decimals0=18,
            decimals1=6,
            fee_pips=500,
            stable_token=1,
            reference_price_usd=3000.0,
        ),
    )
}

DEFAULT_POOL_ADDRESS = "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640"


def pool_by_address(address: str) -> PoolSpec:
    """Look a known pool up by address, case-insensitively; ``KeyError`` names the address."""
    try:
        return KNOWN_POOLS[address.lower()]
    except KeyError:
        raise KeyError(f"unknown pool address {address!r}") from None


@dataclass(frozen=True)
class MarketInputs:
    """Market conditions for one episode, taken from the intel snapshot where present.

    ``None`` means the snapshot had no usable value; the environment then uses its documented
    defaults and says so in ``ExecutionOutcome.simulation``.
    """

    price_usd: float | None = None
    volatility_daily: float | None = None
    volume_usd_per_day: float | None = None
    active_liquidity_usd: float | None = None
    gas_price_gwei: float | None = None
    eth_price_usd: float | None = None


@dataclass(frozen=True)
class ExecutionRequest:
    """What to execute: one LP position held for ``horizon_hours``.

    ``size_usd`` is the size the agent proposed; the executor multiplies it by ``risk_scalar``
    and reports both the scalar and the size it actually applied.
    """

    run_id: str
    episode_id: str
    pool: PoolSpec
    tick_lower: int
    tick_upper: int
    size_usd: float
    risk_scalar: float
    horizon_hours: float
    seed: int
    market: MarketInputs = field(default_factory=MarketInputs)


@dataclass(frozen=True)
class ExecutionOutcome:
    """What happened. ``il_usd`` is the loss against holding (positive = worse than holding);
    ``hodl_return_usd`` is what holding the deposited tokens gained (their value at the end −
    at the start), so ``pnl_usd = hodl_return_usd − il_usd + fees_usd − gas_cost_usd``."""

    pnl_usd: float
    fees_usd: float
    gas_cost_usd: float
    il_usd: float
    time_in_range_pct: float
    risk_scalar_applied: float
    size_usd_applied: float
    simulation: dict[str, Any]
    hodl_return_usd: float = 0.0


@dataclass(frozen=True)
class EnvHealth:
    """What metadata.json records as gateway_health / gateway_latency_ms."""

    status: str
    latency_ms: float | None = None


class ExecutionSkipped(Exception):
    """A safety gate refused execution; the episode is ``skipped`` with ``gate`` named.

    Nothing was sent to any write route. ``str()`` says which gate and why.
    """

    def __init__(self, gate: str, message: str) -> None:
        super().__init__(f"{gate}: {message}")
        self.gate = gate


#: The attribute a failed live execution leaves on its exception: the transactions it had
#: already sent (approvals, the open…) with their gas, so failure.json records money spent.
TRANSACTIONS_ATTR = "clmmd_transactions"


def attach_transactions(exc: BaseException, transactions: list[dict[str, Any]]) -> None:
    """Record on ``exc`` what an execution sent before it failed (see :func:`sent_before`)."""
    setattr(exc, TRANSACTIONS_ATTR, transactions)


def sent_before(exc: BaseException) -> list[dict[str, Any]]:
    """The transactions (each with ``gas_native``) a failed execution had sent; ``[]`` when
    none (mock executions, failures before any write)."""
    found = getattr(exc, TRANSACTIONS_ATTR, None)
    return list(found) if isinstance(found, list) else []


class PoolValidationError(Exception):
    """The proposal's pool failed validation (stage ``validate``); nothing executed.

    ``field`` names what was wrong (address, chain, network, pool, pair, fee_tier).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class ClmmEnv(Protocol):
    """An execution environment: the mock simulator or real execution through Gateway."""

    name: Literal["mock", "real"]

    async def health(self) -> EnvHealth | None:
        """Gateway health for metadata (``None`` in mock mode, where there is no Gateway)."""
        ...

    async def execute(self, request: ExecutionRequest) -> ExecutionOutcome:
        """Execute ``request``.

        Raises :class:`ExecutionSkipped` when a live-risk gate blocks (result.json, status
        ``skipped``), :class:`PoolValidationError` when the pool fails validation (failure.json,
        stage ``validate``), anything else on failure (failure.json, stage ``execute``).
        """
        ...
