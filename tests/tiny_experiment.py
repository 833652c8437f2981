"""A tiny experiment for the tests of the experiment config, the tuning, the runner and the
studies: generated shapes, the smoke profile, two seeds of three methods, one sweep value,
the localisation and the claims' runs."""

from __future__ import annotations

import yaml

TINY = {
    "name": "tiny",
    "run": {"dataset": "shapes", "profile": "smoke", "train_subset": 192, "test_subset": 48},
    "methods": ["scratch", "kd", "xdistill"],
    "seeds": [0, 1],
    "explainers": ["gradcam", "saliency"],
    "n_slow": 8,
    "n_faithful": 8,
    "sweeps": {"fusion": ["gate"]},
    "localisation_methods": ["kd"],
    "claim_methods": ["scratch", "kd"],
    "claim_seeds": [2],
}



def write_config(tmp_path, d, name="exp.yaml"):
    """``d`` written as an experiment YAML in ``tmp_path``; returns its path."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(d))
    return path
