"""Small results frames, one row per (method, seed), whose paired differences are known."""

from __future__ import annotations

import pandas as pd


def paired_frame():
    """Methods a and b on three seeds of group main (a - b: +0.02, +0.03, +0.01), and one
    sweep row that no main-group reading may see."""
    rows = []
    for seed, (a, b) in enumerate([(0.80, 0.78), (0.82, 0.79), (0.84, 0.83)]):
        rows.append({"group": "main", "method": "a", "seed": seed, "accuracy": a})
        rows.append({"group": "main", "method": "b", "seed": seed, "accuracy": b})
    rows.append({"group": "sweep", "method": "a", "seed": 0, "accuracy": 0.1})
    return pd.DataFrame(rows)


def claims_frame(group="main", seeds=3):
    """Three methods, three seeds; the per-seed differences are written beside each claim."""
    runs = {  # method: (accuracy, agreement, gradcam/pearson) per seed
        "scratch": [(0.80, 0.80, 0.30), (0.80, 0.80, 0.30), (0.80, 0.80, 0.30)],
        "kd": [(0.82, 0.85, 0.31), (0.82, 0.86, 0.29), (0.82, 0.87, 0.30)],
        "xdistill": [(0.79, 0.87, 0.41), (0.78, 0.89, 0.49), (0.77, 0.88, 0.60)],
    }
    rows = []
    for method, per_seed in runs.items():
        for seed, (acc, agree, r) in enumerate(per_seed[:seeds]):
            rows.append({"group": group, "method": method, "seed": seed, "accuracy": acc,
                         "agreement": agree, "gradcam/pearson": r})
    return pd.DataFrame(rows)
