"""Evaluation: scoring a trained model, and showing a student other maps.

- :mod:`~xdx_lib.evaluation.scoring`: accuracy, agreement, explanation similarity and
  faithfulness of one trained model;
- :mod:`~xdx_lib.evaluation.interventions`: an XDistillation student shown other maps.
"""
