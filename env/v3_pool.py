"""An exact Python model of one ``UniswapV3Pool`` (v3-core 1.0.1): ticks, swaps, fee growth,
positions.

It mirrors the contract's ``swap`` loop (next initialised tick within one bitmap word, one
:func:`env.swap_math.compute_swap_step` per step, protocol fee, fee growth per unit of
liquidity in Q128, tick crossing), ``mint``/``burn`` (``_modifyPosition``, ``Tick.update``,
``Position.update``) and ``collect``; the oracle is left out (it changes no amount). Its Swap
events and the fees it owes are checked against the real bytecode on an in-process EVM
(``tests/env/test_replay_evm.py``), which is what lets fast tests and benchmarks use it to make
pool-consistent histories instead of the EVM.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from clmmd.env.swap_math import (
    Q128,
    UINT256,
    compute_swap_step,
    fee_growth_delta,
    lp_fee,
    position_amounts,
)
from clmmd.env.uniswap_math import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
)

_MASK256 = UINT256 - 1


@dataclass
class TickInfo:
    liquidity_gross: int = 0
    liquidity_net: int = 0
    fee_growth_outside0: int = 0
    fee_growth_outside1: int = 0


@dataclass
class PositionInfo:
    liquidity: int = 0
    fee_growth_inside0_last: int = 0
    fee_growth_inside1_last: int = 0
    tokens_owed0: int = 0
    tokens_owed1: int = 0


@dataclass(frozen=True)
class SwapResult:
    """The pool's ``Swap`` event: signed amounts (positive = into the pool) and the state after."""

    amount0: int
    amount1: int
    sqrt_price_x96: int
    liquidity: int
    tick: int


class V3Pool:
    """One pool's state. Amounts are raw token units; ``fee_protocol`` is slot0's packed byte
    (token0's denominator in the low 4 bits, token1's in the high 4 bits, 0 = off)."""

    def __init__(
        self, sqrt_price_x96: int, fee_pips: int, tick_spacing: int, fee_protocol: int = 0
    ) -> None:
        if not MIN_SQRT_RATIO <= sqrt_price_x96 < MAX_SQRT_RATIO:
            raise ValueError(f"sqrt_price_x96 {sqrt_price_x96} outside the pool's range")
        self.sqrt_price_x96 = sqrt_price_x96
        self.tick = get_tick_at_sqrt_ratio(sqrt_price_x96)
        self.fee_pips = fee_pips
        self.tick_spacing = tick_spacing
        self.fee_protocol = fee_protocol
        self.liquidity = 0
        self.fee_growth_global0 = 0
        self.fee_growth_global1 = 0
        self.protocol_fees0 = 0
        self.protocol_fees1 = 0
        self.ticks: dict[int, TickInfo] = {}
        self._initialized: list[int] = []  # sorted ticks with liquidity_gross > 0
        self.positions: dict[tuple[str, int, int], PositionInfo] = {}

    # --- ticks -------------------------------------------------------------------------------

    def _next_initialized_tick(self, tick: int, lte: bool) -> tuple[int, bool]:
        """``TickBitmap.nextInitializedTickWithinOneWord``."""
        spacing = self.tick_spacing
        compressed = tick // spacing
        if lte:
            word_start = (compressed >> 8) << 8
            i = bisect.bisect_right(self._initialized, compressed * spacing) - 1
            if i >= 0 and self._initialized[i] >= word_start * spacing:
                return self._initialized[i], True
            return word_start * spacing, False
        compressed += 1
        word_end = ((compressed >> 8) << 8) + 255
        i = bisect.bisect_left(self._initialized, compressed * spacing)
        if i < len(self._initialized) and self._initialized[i] <= word_end * spacing:
            return self._initialized[i], True
        return word_end * spacing, False

    def _update_tick(self, tick: int, liquidity_delta: int, upper: bool) -> bool:
        info = self.ticks.setdefault(tick, TickInfo())
        gross_before = info.liquidity_gross
        gross_after = gross_before + liquidity_delta
        if gross_after < 0:
            raise ValueError(f"tick {tick}: liquidity_gross would go negative")
        if gross_before == 0 and tick <= self.tick:
            info.fee_growth_outside0 = self.fee_growth_global0
            info.fee_growth_outside1 = self.fee_growth_global1
        info.liquidity_gross = gross_after
        info.liquidity_net += -liquidity_delta if upper else liquidity_delta
        flipped = (gross_after == 0) != (gross_before == 0)
        if flipped:
            if gross_after == 0:
                self._initialized.remove(tick)
            else:
                bisect.insort(self._initialized, tick)
        return flipped

    def fee_growth_inside(self, lower: int, upper: int) -> tuple[int, int]:
        """``Tick.getFeeGrowthInside`` (modulo 2**256, as the contract lets it wrap)."""
        lo, hi = self.ticks.get(lower, TickInfo()), self.ticks.get(upper, TickInfo())
        g0, g1 = self.fee_growth_global0, self.fee_growth_global1
        below0, below1 = (
            (lo.fee_growth_outside0, lo.fee_growth_outside1)
            if self.tick >= lower
            else (g0 - lo.fee_growth_outside0, g1 - lo.fee_growth_outside1)
        )
        above0, above1 = (
            (hi.fee_growth_outside0, hi.fee_growth_outside1)
            if self.tick < upper
            else (g0 - hi.fee_growth_outside0, g1 - hi.fee_growth_outside1)
        )
        return (g0 - below0 - above0) & _MASK256, (g1 - below1 - above1) & _MASK256

    # --- positions ---------------------------------------------------------------------------

    def _check_ticks(self, lower: int, upper: int) -> None:
        if not (MIN_TICK <= lower < upper <= MAX_TICK):
            raise ValueError(f"bad tick range [{lower}, {upper}]")
        if lower % self.tick_spacing or upper % self.tick_spacing:
            raise ValueError(f"ticks [{lower}, {upper}] not on spacing {self.tick_spacing}")

    def _modify_position(
        self, owner: str, lower: int, upper: int, liquidity_delta: int
    ) -> tuple[int, int]:
        self._check_ticks(lower, upper)
        key = (owner, lower, upper)
        position = self.positions.setdefault(key, PositionInfo())
        flipped_lower = flipped_upper = False
        if liquidity_delta != 0:
            flipped_lower = self._update_tick(lower, liquidity_delta, upper=False)
            flipped_upper = self._update_tick(upper, liquidity_delta, upper=True)
        inside0, inside1 = self.fee_growth_inside(lower, upper)
        if liquidity_delta == 0 and position.liquidity == 0:
            raise ValueError("NP: poke of a position without liquidity")
        owed0 = ((inside0 - position.fee_growth_inside0_last) & _MASK256) * position.liquidity
        owed1 = ((inside1 - position.fee_growth_inside1_last) & _MASK256) * position.liquidity
        position.tokens_owed0 += owed0 // Q128
        position.tokens_owed1 += owed1 // Q128
        position.fee_growth_inside0_last, position.fee_growth_inside1_last = inside0, inside1
        if position.liquidity + liquidity_delta < 0:
            raise ValueError("LS: burning more liquidity than the position has")
        position.liquidity += liquidity_delta
        if liquidity_delta < 0:
            for tick, flipped in ((lower, flipped_lower), (upper, flipped_upper)):
                if flipped:
                    del self.ticks[tick]
        return self._amounts_for_delta(lower, upper, liquidity_delta)

    def _amounts_for_delta(self, lower: int, upper: int, delta: int) -> tuple[int, int]:
        if delta == 0:
            return 0, 0
        if lower <= self.tick < upper:
            self.liquidity += delta
        sign = 1 if delta > 0 else -1
        amount0, amount1 = position_amounts(
            self.sqrt_price_x96,
            self.tick,
            lower,
            upper,
            get_sqrt_ratio_at_tick(lower),
            get_sqrt_ratio_at_tick(upper),
            abs(delta),
            round_up=delta > 0,
        )
        return sign * amount0, sign * amount1

    def mint(self, owner: str, lower: int, upper: int, liquidity: int) -> tuple[int, int]:
        """Add ``liquidity``; returns the token amounts the minter pays (rounded up)."""
        if liquidity <= 0:
            raise ValueError(f"mint liquidity must be > 0, got {liquidity}")
        return self._modify_position(owner, lower, upper, liquidity)

    def burn(self, owner: str, lower: int, upper: int, liquidity: int) -> tuple[int, int]:
        """Remove ``liquidity`` (0 = only update fees); amounts (rounded down) become owed."""
        amount0, amount1 = self._modify_position(owner, lower, upper, -liquidity)
        position = self.positions[(owner, lower, upper)]
        position.tokens_owed0 += -amount0
        position.tokens_owed1 += -amount1
        return -amount0, -amount1

    def collect(self, owner: str, lower: int, upper: int) -> tuple[int, int]:
        """Pay out everything owed to the position."""
        position = self.positions[(owner, lower, upper)]
        out = (position.tokens_owed0, position.tokens_owed1)
        position.tokens_owed0 = position.tokens_owed1 = 0
        return out

    # --- swap --------------------------------------------------------------------------------

    def swap(
        self, zero_for_one: bool, amount_specified: int, sqrt_price_limit_x96: int | None = None
    ) -> SwapResult:
        """``UniswapV3Pool.swap``: ``amount_specified`` > 0 exact input, < 0 exact output."""
        if amount_specified == 0:
            raise ValueError("AS: amount_specified must not be 0")
        limit = sqrt_price_limit_x96
        if limit is None:
            limit = MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
        if zero_for_one and not MIN_SQRT_RATIO < limit < self.sqrt_price_x96:
            raise ValueError("SPL: price limit must be below the price")
        if not zero_for_one and not self.sqrt_price_x96 < limit < MAX_SQRT_RATIO:
            raise ValueError("SPL: price limit must be above the price")
        fee_protocol = self.fee_protocol % 16 if zero_for_one else self.fee_protocol >> 4
        exact_input = amount_specified > 0
        remaining, calculated = amount_specified, 0
        growth = self.fee_growth_global0 if zero_for_one else self.fee_growth_global1
        protocol = 0
        while remaining != 0 and self.sqrt_price_x96 != limit:
            start = self.sqrt_price_x96
            tick_next, initialized = self._next_initialized_tick(self.tick, zero_for_one)
            tick_next = max(MIN_TICK, min(MAX_TICK, tick_next))
            sqrt_next = get_sqrt_ratio_at_tick(tick_next)
            target = (
                limit if (sqrt_next < limit if zero_for_one else sqrt_next > limit) else sqrt_next
            )
            step = compute_swap_step(start, target, self.liquidity, remaining, self.fee_pips)
            self.sqrt_price_x96 = step.sqrt_price_next
            if exact_input:
                remaining -= step.amount_in + step.fee_amount
                calculated -= step.amount_out
            else:
                remaining += step.amount_out
                calculated += step.amount_in + step.fee_amount
            fee = lp_fee(step.fee_amount, fee_protocol)
            protocol += step.fee_amount - fee
            if self.liquidity > 0:
                growth += fee_growth_delta(fee, self.liquidity)
            if self.sqrt_price_x96 == sqrt_next:
                if initialized:
                    net = self._cross(tick_next, growth, zero_for_one)
                    self.liquidity += -net if zero_for_one else net
                self.tick = tick_next - 1 if zero_for_one else tick_next
            elif self.sqrt_price_x96 != start:
                self.tick = get_tick_at_sqrt_ratio(self.sqrt_price_x96)
        growth &= _MASK256
        if zero_for_one:
            self.fee_growth_global0, self.protocol_fees0 = growth, self.protocol_fees0 + protocol
        else:
            self.fee_growth_global1, self.protocol_fees1 = growth, self.protocol_fees1 + protocol
        used = amount_specified - remaining
        amount0, amount1 = (used, calculated) if zero_for_one == exact_input else (calculated, used)
        return SwapResult(amount0, amount1, self.sqrt_price_x96, self.liquidity, self.tick)

    def _cross(self, tick: int, growth: int, zero_for_one: bool) -> int:
        """``Tick.cross`` with the in-flight global growth of the swapped token."""
        info = self.ticks[tick]
        g0 = growth if zero_for_one else self.fee_growth_global0
        g1 = self.fee_growth_global1 if zero_for_one else growth
        info.fee_growth_outside0 = (g0 - info.fee_growth_outside0) & _MASK256
        info.fee_growth_outside1 = (g1 - info.fee_growth_outside1) & _MASK256
        return info.liquidity_net
