"""Training: the one loop every model trains in, and the trained models it leaves.

- :mod:`~xdx_lib.training.loop`: :func:`~xdx_lib.training.loop.fit`, the loop;
- :mod:`~xdx_lib.training.optim`: AdamW and its cosine schedule;
- :mod:`~xdx_lib.training.precision`: mixed precision and the optimiser step;
- :mod:`~xdx_lib.training.checkpoints`: save, load, resume;
- :mod:`~xdx_lib.training.learning_curve`: the epochs a learning curve scores;
- :mod:`~xdx_lib.training.trained_model`: a trained model and its cached logits and maps.
"""
