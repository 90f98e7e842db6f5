"""The fees a liquidity position earns over a replayed Swap history, computed as the pool does.

The pool charges ``fee`` pips of a swap's input step by step and adds ``fee × 2**128 // L``
(fee growth per unit of liquidity, Q128) per step to a global accumulator; a position is owed
``L_pos × (growth inside its range) // 2**128``. The replay rebuilds exactly that from the
Swap events alone:

* a swap's price path runs from the previous event's ``sqrtPriceX96`` (and tick) to its own;
  its liquidity is the event's ``liquidity``, which is the pool's active liquidity during the
  swap unless the swap crossed another provider's tick;
* the pool steps at every initialised tick and at every tick-bitmap word boundary on the path
  (``nextInitializedTickWithinOneWord``). The replay steps at the same places: the position's
  own ticks and the word boundaries. Each step that reaches its target is priced with
  :func:`env.swap_math.compute_swap_step`, the pool's own step; the last step's fee is the
  input left after the price move, which is what the pool charges whether the trader fixed the
  input or the output;
* two modes: the position *on top of* the history (a passive extra provider: it takes
  ``L_pos / (L + L_pos)`` of every in-range step's fee and moves no price), or a position the
  history *already contains* (its liquidity is part of the event's ``liquidity`` while the
  price is inside, as for a real position being audited).

Every swap is checked against its own event: the output that the assumed liquidity implies must
equal the event's output (to the pool's rounding: an exact-output swap's output is capped at the
amount asked). A swap that fails crossed a tick of another provider, which the events do not
name; when it crossed one, that tick is found (see :func:`_walk`) and the swap is exact again.
Otherwise its fee is modelled (``fee`` pips of the input, shared by the in-range part of the
price move) and counted in ``swaps_modelled``. :func:`replay_vector` is :func:`replay_exact` in
numpy floats for the one-step swaps strictly inside or outside the range; the others go
through the same exact code.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

from clmmd.env.history import HistoryError, SwapHistory
from clmmd.env.swap_math import (
    FEE_DENOMINATOR,
    Q96,
    amount0_delta,
    amount1_delta,
    ceil_div,
    compute_swap_step,
    lp_fee,
)
from clmmd.env.uniswap_math import MAX_TICK, MIN_TICK, get_sqrt_ratio_at_tick

_TWO_96 = 2.0**96
_TWO_128 = 2.0**128


@dataclass(frozen=True)
class LpPosition:
    """A range position: ticks, liquidity, and whether the history already contains it."""

    tick_lower: int
    tick_upper: int
    liquidity: int
    in_history: bool = False

    def __post_init__(self) -> None:
        if self.tick_lower >= self.tick_upper:
            raise ValueError(f"tick_lower={self.tick_lower} must be below {self.tick_upper}")
        if self.tick_lower < MIN_TICK or self.tick_upper > MAX_TICK:
            raise ValueError(f"ticks [{self.tick_lower}, {self.tick_upper}] outside the pool's")
        if self.liquidity <= 0:
            raise ValueError(f"liquidity={self.liquidity} must be > 0")


@dataclass(frozen=True)
class FeeResult:
    """Fees owed to the position over the replayed swaps, per token in raw units (exact
    integers from :func:`replay_exact`, rounded-down floats from :func:`replay_vector`)."""

    fee0: int
    fee1: int
    method: Literal["exact", "vector"]
    swaps: int  # swaps replayed
    swaps_in_range: int  # swaps whose price path reached the range
    swaps_stepped: int  # swaps walked step by step (at a boundary or a word boundary)
    swaps_modelled: int  # swaps in range whose liquidity the events did not describe


class PreparedHistory:
    """A history with what does not depend on the position worked out once per swap.

    ``fee[i]`` is what liquidity providers earned on swap ``i`` (the protocol's cut removed)
    if it was one pool step (``stepped[i]`` false) on the event's liquidity (``verified[i]``);
    unverified swaps carry the modelled fee. Row 0 opens the history: no price before it.
    """

    def __init__(
        self,
        history: SwapHistory,
        fee_pips: int,
        tick_spacing: int,
        fee_protocol: tuple[int, int] = (0, 0),
    ) -> None:
        for value in fee_protocol:
            if value != 0 and not 4 <= value <= 10:
                raise ValueError(f"fee_protocol denominators must be 0 or 4..10, got {value}")
        if not 0 < fee_pips < FEE_DENOMINATOR:
            raise ValueError(f"fee_pips must be in (0, {FEE_DENOMINATOR}), got {fee_pips}")
        if tick_spacing <= 0:
            raise ValueError(f"tick_spacing must be > 0, got {tick_spacing}")
        self.history = history
        self.fee_pips = fee_pips
        self.tick_spacing = tick_spacing
        self.fee_protocol = fee_protocol
        self._sqrt_at: dict[int, int] = {}
        #: What the crossing search found per swap for positions on top (see ``_walk``):
        #: ``None`` (one step on the event's liquidity), a ``_Crossing``, or ``"modelled"``.
        self.crossings: dict[int, object] = {}
        n = len(history)
        self.zero_for_one: list[bool] = [a0 > 0 for a0 in history.amount0]
        self.fee: list[int] = [0] * n
        self.verified: list[bool] = [True] * n
        self.stepped_np: NDArray[np.bool_] = self._word_crossings()
        self.stepped: list[bool] = self.stepped_np.tolist()
        self._prepare()
        # Float views for the vectorised path (one conversion per history).
        self.sqrt_f: NDArray[np.float64] = (
            np.fromiter(map(float, history.sqrt_price_x96), np.float64, n) / _TWO_96
        )
        self.liquidity_f: NDArray[np.float64] = np.fromiter(
            map(float, history.liquidity), np.float64, n
        )
        self.fee_f: NDArray[np.float64] = np.fromiter(map(float, self.fee), np.float64, n)
        self.zero_for_one_np: NDArray[np.bool_] = np.fromiter(self.zero_for_one, np.bool_, n)
        self.verified_np: NDArray[np.bool_] = np.fromiter(self.verified, np.bool_, n)
        # One pool step on the event's liquidity: ``fee`` is then the whole story. The rest is
        # walked step by step for each position (where the crossed tick is also looked for).
        self.simple_np: NDArray[np.bool_] = self.verified_np & ~self.stepped_np
        self.simple: list[bool] = self.simple_np.tolist()

    def __len__(self) -> int:
        return len(self.history)

    def sqrt_at(self, tick: int) -> int:
        """``getSqrtRatioAtTick``, memoised (word boundaries repeat across a history)."""
        price = self._sqrt_at.get(tick)
        if price is None:
            price = self._sqrt_at[tick] = get_sqrt_ratio_at_tick(tick)
        return price

    def word_step(self, tick: int, zero_for_one: bool) -> int:
        """Where the pool's step from ``tick`` ends when no initialised tick is in its bitmap
        word: the word's first tick going down, its last going up (clamped to the tick range)."""
        spacing = self.tick_spacing
        if zero_for_one:
            return max(MIN_TICK, ((tick // spacing) >> 8 << 8) * spacing)
        return min(MAX_TICK, ((((tick // spacing) + 1) >> 8 << 8) + 255) * spacing)

    def _word_crossings(self) -> NDArray[np.bool_]:
        """Swaps whose path leaves the tick-bitmap word it started in: the pool takes more than
        one step for them even with no initialised tick on the way. In ticks: going down the
        word's first tick is crossed (the pool lands below it), going up its last is reached."""
        spacing = self.tick_spacing
        ticks = self.history.tick
        compressed = ticks[:-1] // spacing
        first = np.maximum(MIN_TICK, ((compressed >> 8) << 8) * spacing)
        last = np.minimum(MAX_TICK, ((((compressed + 1) >> 8) << 8) + 255) * spacing)
        stepped = np.zeros(len(ticks), dtype=np.bool_)
        zero_for_one = np.fromiter(self.zero_for_one, np.bool_, len(ticks))[1:]
        stepped[1:] = np.where(zero_for_one, ticks[1:] < first, ticks[1:] >= last)
        return stepped

    def _prepare(self) -> None:
        history = self.history
        prices, liquidity = history.sqrt_price_x96, history.liquidity
        amount0, amount1 = history.amount0, history.amount1
        zero_for_one, fees, verified = self.zero_for_one, self.fee, self.verified
        fee_pips = self.fee_pips
        protocol0, protocol1 = self.fee_protocol
        q96_less_one = Q96 - 1
        for i in range(1, len(history)):
            before, after, liq = prices[i - 1], prices[i], liquidity[i]
            # amount0_delta / amount1_delta inlined (this loop runs once per swap of the
            # history); a ceiling of positive integers is (x + d - 1) // d.
            if zero_for_one[i]:
                if after > before:
                    raise _gap(history, i, "pays token0 in but the price rose")
                paid, received, protocol = amount0[i], -amount1[i], protocol0
                moved = (liq << 96) * (before - after)
                need = ((moved + before - 1) // before + after - 1) // after
                gave = liq * (before - after) >> 96
            else:
                if after < before:
                    raise _gap(history, i, "pays token1 in but the price fell")
                paid, received, protocol = amount1[i], -amount0[i], protocol1
                need = (liq * (after - before) + q96_less_one) >> 96
                gave = (liq << 96) * (after - before) // after // before
            fee = paid - need
            excess = gave - received  # see _output_matches, for one step
            if fee < 0 or excess < -1 or excess > 2 + (liq >> 96):
                verified[i] = False
                fee = ceil_div(paid * fee_pips, FEE_DENOMINATOR)
            fees[i] = fee - fee // protocol if protocol else fee


def _output_matches(excess: int, steps: int, liquidity: int) -> bool:
    """Whether the output implied by the assumed liquidity (``excess`` above the event's) is the
    event's to the pool's rounding: an exact-output swap is capped at the amount asked, which
    the price move can exceed by up to L / 2**96 + 1; one wei per step either way is allowed
    for an initialised tick whose net liquidity is zero (it splits a step, changes nothing)."""
    return -steps <= excess <= steps + 1 + (liquidity >> 96)


def _gap(history: SwapHistory, i: int, what: str) -> HistoryError:
    return HistoryError(
        f"row {i} (block {history.block_number[i]}, log index {history.log_index[i]}) {what} "
        f"(sqrt price {history.sqrt_price_x96[i - 1]} -> {history.sqrt_price_x96[i]}): events "
        "are missing before it or out of order"
    )


def _not_contained(history: SwapHistory, i: int, pos_liquidity: int) -> HistoryError:
    return HistoryError(
        f"row {i} (block {history.block_number[i]}, log index {history.log_index[i]}): active "
        f"liquidity {history.liquidity[i]} inside the range is below the position's "
        f"{pos_liquidity}: the history does not contain this position"
    )


@dataclass(frozen=True)
class _Range:
    """A position with its boundary prices, as the replay loops need it."""

    lower: int
    upper: int
    sqrt_lower: int
    sqrt_upper: int
    liquidity: int
    in_history: bool

    @classmethod
    def of(cls, position: LpPosition, prepared: PreparedHistory) -> _Range:
        return cls(
            position.tick_lower,
            position.tick_upper,
            prepared.sqrt_at(position.tick_lower),
            prepared.sqrt_at(position.tick_upper),
            position.liquidity,
            position.in_history,
        )


def _check_window(prepared: PreparedHistory, start: int, stop: int) -> None:
    if not 0 <= start <= stop < len(prepared):
        raise ValueError(f"replay window [{start}, {stop}] outside rows 0..{len(prepared) - 1}")


#: How far the search for one crossed tick looks (tick spacings along the swap's path).
MAX_CROSSING_CANDIDATES = 400


#: Markers of what the crossing search found for a swap (position on top of the history).
_UNKNOWN: Final = "unknown"
_MODELLED: Final = "modelled"


@dataclass(frozen=True)
class _Crossing:
    """One initialised tick of other providers that a swap crossed, and their liquidity on
    either side of it along the swap's path."""

    tick: int
    before: int
    after: int


def _next_step(
    prepared: PreparedHistory,
    tick: int,
    zero_for_one: bool,
    r: _Range,
    crossing: _Crossing | None,
) -> int:
    """The tick the pool's next step heads for: the nearest of the initialised ticks known
    (the position's, a crossed one) and the word boundary, at or below the current tick going
    down, above it going up."""
    known = (r.lower, r.upper) if crossing is None else (r.lower, r.upper, crossing.tick)
    word = prepared.word_step(tick, zero_for_one)
    if zero_for_one:
        return max([word] + [t for t in known if t <= tick])
    return min([word] + [t for t in known if t > tick])


def _walk(prepared: PreparedHistory, i: int, r: _Range) -> tuple[int, bool]:
    """Fee growth inside the range (Q128, in the input token) from swap ``i``, walked step by
    step like the pool, and whether its event confirmed the liquidity along the way.

    First on the event's liquidity; if the event disagrees, the swap crossed another
    provider's tick: the previous event's liquidity was the pool's before it and this one's
    after it, so every tick the path could have crossed is tried, and the one that reproduces
    the event's output exactly is taken. Only when none does (several crossings, or liquidity
    added or removed since the previous swap) is the fee modelled. For a position on top of the
    history what the search finds does not depend on the position, so it is kept per swap.
    """
    history = prepared.history
    contained = r.in_history
    end_tick = int(history.tick[i])
    others_after = history.liquidity[i]
    if contained and r.lower <= end_tick < r.upper:
        others_after -= r.liquidity
        if others_after < 0:
            raise _not_contained(history, i, r.liquidity)
    known = None if contained else prepared.crossings.get(i, _UNKNOWN)
    if known is None or known is _UNKNOWN:
        growth = _walk_with(prepared, i, r, others_after, None)
        if growth is not None:
            if known is _UNKNOWN:
                prepared.crossings[i] = None
            return growth, True
    if isinstance(known, _Crossing):
        growth = _walk_with(prepared, i, r, known.before, known)
        if growth is not None:
            return growth, True
    if known is _UNKNOWN or contained:
        for crossing in _crossing_candidates(prepared, i, r, others_after):
            growth = _walk_with(prepared, i, r, crossing.before, crossing)
            if growth is not None:
                if not contained:
                    prepared.crossings[i] = crossing
                return growth, True
        if not contained:
            prepared.crossings[i] = _MODELLED
    return _modelled_growth(prepared, i, r), False


def _crossing_candidates(
    prepared: PreparedHistory, i: int, r: _Range, others_after: int
) -> Iterator[_Crossing]:
    """Every single crossing that could explain swap ``i``: a tick spacing on its path, with
    the previous event's liquidity before it (less the position's if it was in it; a contained
    position minted after that event was not, so both are tried) and this event's after."""
    history = prepared.history
    start_tick, end_tick = int(history.tick[i - 1]), int(history.tick[i])
    befores = [history.liquidity[i - 1]]
    if r.in_history and r.lower <= start_tick < r.upper:
        befores.insert(0, befores[0] - r.liquidity)
    spacing = prepared.tick_spacing
    if prepared.zero_for_one[i]:  # crossed going down: ticks in (end_tick, start_tick]
        first = start_tick // spacing * spacing
        last = max(end_tick, first - MAX_CROSSING_CANDIDATES * spacing)
        ticks = range(first, last, -spacing)
    else:  # going up: ticks in (start_tick, end_tick]
        first = (start_tick // spacing + 1) * spacing
        last = min(end_tick, first + MAX_CROSSING_CANDIDATES * spacing)
        ticks = range(first, last + 1, spacing)
    for before in befores:
        if before >= 0 and before != others_after:
            for tick in ticks:
                yield _Crossing(tick, before, others_after)


def _walk_with(
    prepared: PreparedHistory,
    i: int,
    r: _Range,
    others: int,
    crossing: _Crossing | None,
) -> int | None:
    """One walk of swap ``i`` with the other providers' liquidity ``others`` at its start
    (changing at ``crossing``, if given): the fee growth inside the range, or ``None`` if the
    event's amounts contradict it. Crossing a tick going down makes the tick below current (as
    in the pool), so a swap that ends exactly on a boundary is on the side it was heading for.
    """
    history = prepared.history
    zero_for_one = prepared.zero_for_one[i]
    price, tick = history.sqrt_price_x96[i - 1], int(history.tick[i - 1])
    end_price = history.sqrt_price_x96[i]
    lower, upper, pos_liquidity = r.lower, r.upper, r.liquidity
    if zero_for_one:
        remaining, received = history.amount0[i], -history.amount1[i]
    else:
        remaining, received = history.amount1[i], -history.amount0[i]
    fee_pips = prepared.fee_pips
    protocol = prepared.fee_protocol[0 if zero_for_one else 1]
    out_total = growth = steps = 0
    while True:
        steps += 1
        inside = lower <= tick < upper
        liquidity = others + pos_liquidity if (inside and r.in_history) else others
        share_base = liquidity + pos_liquidity if (inside and not r.in_history) else liquidity
        step_tick = _next_step(prepared, tick, zero_for_one, r, crossing)
        target = prepared.sqrt_at(step_tick)
        if (target >= end_price) if zero_for_one else (target <= end_price):
            step = compute_swap_step(price, target, liquidity, remaining, fee_pips)
            remaining -= step.amount_in + step.fee_amount
            out_total += step.amount_out
            fee = step.fee_amount
            if step.sqrt_price_next != target or remaining < 0:
                return None  # the input ran out before a point the event's price went past
            price, tick = target, (step_tick - 1 if zero_for_one else step_tick)
            if crossing is not None and step_tick == crossing.tick:
                others = crossing.after
            last = False
        else:
            if zero_for_one:
                need = amount0_delta(end_price, price, liquidity, True)
                out_total += amount1_delta(end_price, price, liquidity, False)
            else:
                need = amount1_delta(price, end_price, liquidity, True)
                out_total += amount0_delta(price, end_price, liquidity, False)
            fee = remaining - need
            if fee < 0:
                return None
            last = True
        if inside and share_base > 0:
            growth += (lp_fee(fee, protocol) << 128) // share_base
        if last:
            top = max(others, crossing.before if crossing else 0) + pos_liquidity
            if _output_matches(out_total - received, steps, top):
                if crossing is not None and not _crossed(crossing.tick, tick, zero_for_one):
                    return None  # the tried tick was never reached: not this one
                return growth
            return None


def _crossed(crossing_tick: int, end_tick: int, zero_for_one: bool) -> bool:
    """Whether a walk that ended on ``end_tick`` went past ``crossing_tick``."""
    return end_tick < crossing_tick if zero_for_one else end_tick >= crossing_tick


def _modelled_growth(prepared: PreparedHistory, i: int, r: _Range) -> int:
    """For a swap the events do not explain: the modelled fee (``fee`` pips of the input),
    shared by the input that the in-range part of the price move needed."""
    history = prepared.history
    before, after = history.sqrt_price_x96[i - 1], history.sqrt_price_x96[i]
    low, high = min(before, after), max(before, after)
    in_low, in_high = max(low, r.sqrt_lower), min(high, r.sqrt_upper)
    if in_high <= in_low:
        return 0
    zero_for_one = prepared.zero_for_one[i]
    paid = history.amount0[i] if zero_for_one else history.amount1[i]
    protocol = prepared.fee_protocol[0 if zero_for_one else 1]
    fee = lp_fee(ceil_div(paid * prepared.fee_pips, FEE_DENOMINATOR), protocol)
    # The input a price move needs is linear in the liquidity: the share does not depend on it.
    delta = amount0_delta if zero_for_one else amount1_delta
    part, whole = delta(in_low, in_high, Q96, True), delta(low, high, Q96, True)
    share_base = history.liquidity[i] + (0 if r.in_history else r.liquidity)
    if whole == 0 or share_base == 0:
        return 0
    return ((fee * part // whole) << 128) // share_base


def _swap_growth(
    prepared: PreparedHistory, i: int, r: _Range, low: int, high: int
) -> tuple[int, bool, bool]:
    """Fee growth inside the range (Q128) from swap ``i``, whose price path ``[low, high]``
    reaches the range; whether it was walked step by step; whether its event confirmed it.
    One pool step strictly inside the range is the prepared fee shared by the liquidity there.
    """
    if low > r.sqrt_lower and high < r.sqrt_upper and prepared.simple[i]:
        liquidity = prepared.history.liquidity[i]
        if not r.in_history:
            return (prepared.fee[i] << 128) // (liquidity + r.liquidity), False, True
        if liquidity < r.liquidity:
            raise _not_contained(prepared.history, i, r.liquidity)
        return (prepared.fee[i] << 128) // liquidity, False, True
    growth, ok = _walk(prepared, i, r)
    return growth, True, ok


def replay_exact(
    prepared: PreparedHistory, position: LpPosition, start: int, stop: int
) -> FeeResult:
    """Exact fees owed to ``position`` for swaps ``start + 1`` … ``stop`` (it opens in the
    state after event ``start``): the integers ``collect`` would pay."""
    _check_window(prepared, start, stop)
    r = _Range.of(position, prepared)
    sqrt_lower, sqrt_upper = r.sqrt_lower, r.sqrt_upper
    prices, zero_for_one = prepared.history.sqrt_price_x96, prepared.zero_for_one
    growth0 = growth1 = in_range = walked = modelled = 0
    before = prices[start]
    for i in range(start + 1, stop + 1):
        after = prices[i]
        low, high = (after, before) if after <= before else (before, after)
        before = after
        if high < sqrt_lower or low > sqrt_upper:
            continue
        in_range += 1
        delta, stepped, ok = _swap_growth(prepared, i, r, low, high)
        walked += stepped
        modelled += not ok
        if zero_for_one[i]:
            growth0 += delta
        else:
            growth1 += delta
    return FeeResult(
        fee0=(growth0 * r.liquidity) >> 128,
        fee1=(growth1 * r.liquidity) >> 128,
        method="exact",
        swaps=stop - start,
        swaps_in_range=in_range,
        swaps_stepped=walked,
        swaps_modelled=modelled,
    )


def replay_vector(
    prepared: PreparedHistory, position: LpPosition, start: int, stop: int
) -> FeeResult:
    """:func:`replay_exact` with numpy: one-step swaps strictly inside the range in float64,
    the rest as the exact path does them (walked, or placed with the integer prices where the
    floats cannot tell)."""
    _check_window(prepared, start, stop)
    r = _Range.of(position, prepared)
    sqrt_lower, sqrt_upper = r.sqrt_lower / _TWO_96, r.sqrt_upper / _TWO_96
    rows = slice(start + 1, stop + 1)
    before, after = prepared.sqrt_f[start:stop], prepared.sqrt_f[rows]
    low, high = np.minimum(before, after), np.maximum(before, after)
    # float() is monotonic, so a strict float inequality implies the exact one; a swap the
    # floats cannot place strictly inside or outside (its price within a float's rounding of a
    # bound) goes through the exact path's own placing.
    reaches = ~((high < sqrt_lower) | (low > sqrt_upper))
    inside = (low > sqrt_lower) & (high < sqrt_upper) & prepared.simple_np[rows]
    unsure = reaches & ~inside
    liquidity = prepared.liquidity_f[rows]
    history = prepared.history
    short = None  # the first swap that shows the history lacks a contained position
    if r.in_history:
        # Equal floats can hide an integer shortfall (liquidity beyond 2**53): the float test
        # only picks the candidates, in chain order.
        for k in np.flatnonzero(inside & (liquidity <= r.liquidity)).tolist():
            if history.liquidity[k + start + 1] < r.liquidity:
                short = k + start + 1
                break
        share = r.liquidity / np.where(liquidity > 0, liquidity, 1.0)  # 0 inside: short
    else:
        share = r.liquidity / (liquidity + r.liquidity)
    earned = np.where(inside, prepared.fee_f[rows] * share, 0.0)
    zero_for_one = prepared.zero_for_one_np[rows]
    fee0, fee1 = float(earned[zero_for_one].sum()), float(earned[~zero_for_one].sum())
    in_range = int(inside.sum())
    walked = modelled = 0
    prices = history.sqrt_price_x96
    for i in (np.flatnonzero(unsure) + start + 1).tolist():
        if short is not None and short < i:
            break  # the exact path stops at the earlier swap
        a, b = prices[i - 1], prices[i]
        exact_low, exact_high = (b, a) if b <= a else (a, b)
        if exact_high < r.sqrt_lower or exact_low > r.sqrt_upper:
            continue
        in_range += 1
        delta, stepped, ok = _swap_growth(prepared, i, r, exact_low, exact_high)
        walked += stepped
        modelled += not ok
        amount = delta * r.liquidity / _TWO_128
        if prepared.zero_for_one[i]:
            fee0 += amount
        else:
            fee1 += amount
    if short is not None:
        raise _not_contained(history, short, r.liquidity)
    return FeeResult(
        fee0=int(fee0),
        fee1=int(fee1),
        method="vector",
        swaps=stop - start,
        swaps_in_range=in_range,
        swaps_stepped=walked,
        swaps_modelled=modelled,
    )
