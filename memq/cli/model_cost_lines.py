"""What the model-based processors cost, as ``memq stats`` and ``memq status`` print it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

COST_NOTE: Final = (
    "cost: an estimate from the price table (USD per million tokens; set model_prices), "
    "not a bill; days are UTC days"
)


def tokens_text(n: int) -> str:
    """``950``, ``14.2k``, ``3.10M``."""
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.2f}M"


def cost_text(value: float | None, unpriced: list[str] | None = None) -> str:
    """``$0.0247``; ``?`` when none of it had a price."""
    if value is None:
        return "-"
    text = f"${value:.4f}" if value < 1 else f"${value:.2f}"
    return f"{text}+?" if unpriced else text


def _row(values: Mapping[str, Any]) -> str:
    cache = values["cache_read_tokens"] + values["cache_write_tokens"]
    return (
        f"{values['messages']:>8} {tokens_text(values['input_tokens']):>8}"
        f" {tokens_text(values['output_tokens']):>8} {tokens_text(cache):>8}"
        f" {values['fallbacks']:>8} {cost_text(values['cost_usd'], values['unpriced_models']):>10}"
    )


HEADER: Final = (
    f"{'MESSAGES':>8} {'INPUT':>8} {'OUTPUT':>8} {'CACHE':>8} {'EXTRACT':>8} {'COST':>10}"
)


def model_cost_lines(models: Mapping[str, Any] | None) -> list[str]:
    """The ``models`` section of ``GET /api/stats`` as lines (none when it is absent)."""
    if not models:
        return []
    days = models["days_shown"]
    if not models["total"]["messages"]:
        return ["", f"no model tokens spent in the last {days} days (processor extract)"]
    lines = ["", f"model tokens, last {days} days (since {models['since']})", f"{HEADER}  DAY"]
    lines += [f"{_row(day)}  {day['day']}" for day in models["days"]]
    lines += ["", f"{HEADER}  PROJECT"]
    lines += [f"{_row(p)}  {p['project'] or '(no project)'}" for p in models["projects"]]
    if len(models["projects"]) != 1:
        lines.append(f"{_row(models['total'])}  (all)")
    lines += ["", f"{HEADER}  MODEL"]
    lines += [f"{_row(m)}  {m['model']} ({m['processor']})" for m in models["models"]]
    unpriced = models["total"]["unpriced_models"]
    if unpriced:
        lines.append(f"no price for {', '.join(unpriced)}: '+?' costs leave them out")
    lines += ["", "EXTRACT: messages extract processed because the daily token budget was spent"]
    lines.append(COST_NOTE)
    return lines


def _duration(seconds: float) -> str:
    minutes = max(0, int(seconds)) // 60
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def status_model_lines(models: Mapping[str, Any] | None) -> list[str]:
    """``memq status``'s line on today's model tokens and the daily budget."""
    if not models:
        return []
    tokens = models["today_tokens"]
    budget = models["daily_tokens"]
    resets = f"resets 00:00 UTC (in {_duration(models['resets_in_seconds'])})"
    line = f"tokens    today {tokens_text(tokens)} (~{cost_text(models['today_cost_usd'])})"
    if budget is None:
        return [f"{line}, no daily budget"]
    if models["budget_spent"]:
        return [
            f"BUDGET    spent: {tokens_text(tokens)} of {tokens_text(budget)} tokens today;"
            f" extract processes tool calls and summaries until it {resets}"
            f" ({models['fallbacks_today']} so far)"
        ]
    return [f"{line} of a {tokens_text(budget)} daily budget; {resets}"]
