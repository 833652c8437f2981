"""From result files to tables and verdicts: means over seeds, paired intervals, claims.

A method is "better" only beyond the noise between seeds: every comparison here pairs two
methods on the same seed (same initial data order and subset), takes the per-seed
differences ``d_s = m_A(s) - m_B(s)`` and reports their mean with a 95 % Student-t
interval, ``mean(d) +- t_{0.975, n-1} sd(d) / sqrt(n)``. With one seed there is no
interval (NaN) and every verdict is "inconclusive".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd


def results_frame(results: Sequence[dict]) -> pd.DataFrame:
    """One row per run: label, group, method, seed, sweep option/value, then every metric."""
    rows = []
    for r in results:
        row = {k: r.get(k) for k in ("label", "group", "method", "seed", "option", "value")}
        row.update(r["metrics"])
        rows.append(row)
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame, metrics: Sequence[str], group: str = "main",
            by: str = "method") -> pd.DataFrame:  # fmt: skip
    """Mean and standard deviation over seeds of each metric, one row per ``by`` value.

    Columns are ``(metric, "mean")``, ``(metric, "std")`` and ``n`` (seeds); the order of
    rows follows first appearance.
    """
    part = df[df["group"] == group]
    order = list(dict.fromkeys(part[by]))
    agg = part.groupby(by)[list(metrics)].agg(["mean", "std"]).reindex(order)
    agg[("n", "")] = part.groupby(by).size().reindex(order)
    return agg


def paired_difference(df: pd.DataFrame, a: str, b: str, metric: str, group: str = "main",
                      confidence: float = 0.95) -> dict:  # fmt: skip
    """Mean of ``metric(a) - metric(b)`` over seeds both methods ran, with a t interval.

    Returns ``{"a", "b", "metric", "n", "mean", "low", "high"}``; ``low``/``high`` are NaN
    with fewer than two seeds.
    """
    from scipy import stats

    part = df[df["group"] == group]
    wide = part.pivot_table(index="seed", columns="method", values=metric)
    if a not in wide or b not in wide:
        raise ValueError(f"paired_difference: no runs of {a!r} and {b!r} in group {group!r}")
    d = (wide[a] - wide[b]).dropna()
    n = len(d)
    mean = float(d.mean()) if n else math.nan
    if n < 2:
        low = high = math.nan
    else:
        half = stats.t.ppf(0.5 + confidence / 2, n - 1) * float(d.std(ddof=1)) / math.sqrt(n)
        low, high = mean - half, mean + half
    return {"a": a, "b": b, "metric": metric, "n": n, "mean": mean, "low": low, "high": high}


def direction(diff: dict) -> str:
    """``"A > B"``, ``"A < B"`` (the interval excludes 0) or ``"no difference shown"``."""
    if math.isnan(diff["low"]):
        return "no difference shown"
    if diff["low"] > 0:
        return f"{diff['a']} > {diff['b']}"
    if diff["high"] < 0:
        return f"{diff['a']} < {diff['b']}"
    return "no difference shown"


def claim_verdict(needed: Sequence[dict], against: Sequence[dict] = ()) -> str:
    """``supported`` when every ``needed`` difference is positive beyond its interval;
    ``not supported`` when any ``needed`` difference is negative beyond its interval, or
    any ``against`` difference is positive beyond it; ``inconclusive`` otherwise."""

    def positive(d):
        return not math.isnan(d["low"]) and d["low"] > 0

    def negative(d):
        return not math.isnan(d["high"]) and d["high"] < 0

    if any(negative(d) for d in needed) or any(positive(d) for d in against):
        return "not supported"
    if all(positive(d) for d in needed):
        return "supported"
    return "inconclusive"


def format_interval(diff: dict, digits: int = 3) -> str:
    """``+0.012 [-0.004, +0.028] (n=3)``."""
    if math.isnan(diff["low"]):
        return f"{diff['mean']:+.{digits}f} (n={diff['n']}, no interval)"
    return (f"{diff['mean']:+.{digits}f} [{diff['low']:+.{digits}f}, "
            f"{diff['high']:+.{digits}f}] (n={diff['n']})")  # fmt: skip


def mean_std_strings(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A :func:`summary` table as ``mean ± std`` strings, for display."""
    metrics = [m for m in dict.fromkeys(c[0] for c in table.columns) if m != "n"]
    out = pd.DataFrame(index=table.index)
    for m in metrics:
        mean, std = table[(m, "mean")], table[(m, "std")]
        out[m] = [f"{a:.{digits}f} ± {s:.{digits}f}" if not math.isnan(s) else f"{a:.{digits}f}"
                  for a, s in zip(mean, std)]  # fmt: skip
    out["seeds"] = table[("n", "")]
    return out
