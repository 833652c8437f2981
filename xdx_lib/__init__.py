"""xdx: XDistillation (explainable knowledge distillation) as a PyTorch library.

Importing the package registers every dataset, model, explainer and method, so that any of
them can be named in a config: the modules that define them register them when imported,
and this file imports the two that hold the methods (the others come with them).

The layers, from the bottom (each module imports only modules of the layers below it):

1. ``registry``, ``cache``, ``_utils``: names, the run cache, shared helpers;
2. ``data``, ``models``, ``cae``, ``losses``, ``explain``, ``metrics``, ``faithfulness``;
3. ``train`` (the loop), then ``trained`` (trained models and their cached signals);
4. ``methods`` and ``xdistill`` (how each method trains a student);
5. ``config`` (names every registered thing), ``experiments`` (config -> cached models);
6. ``evaluation``, ``runner``, ``report``, ``plots``, ``notebook``, ``__main__``.
"""

__version__ = "0.1.0"

from . import methods, xdistill  # noqa: E402, F401  (registers every method)
