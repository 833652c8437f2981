"""xdx: XDistillation (explainable knowledge distillation) as a PyTorch library.

Importing the package registers every dataset, model, explainer and method, so that any of
them can be named in a config: the modules that define them register them when imported,
and this file imports the two that hold the methods (the others come with them).

The layers, from the bottom (each module imports only modules of the layers below it):

1. ``registry`` and ``config`` (every name by kind; the run config, which names them only by
   kind), ``cache``, ``_utils``: the run cache, shared helpers;
2. ``data``, ``models``, ``cae``, ``losses``, ``explain``, ``metrics``, ``faithfulness``;
3. ``train`` (the loop), ``trained`` (trained models and their cached maps and logits),
   ``signals`` (the teacher's signals, cached or online);
4. ``methods`` and ``xdistill`` (how each method trains a student, and what it declares);
5. ``session`` (config -> data, teacher and students, each made once);
6. ``evaluation`` (scores only), ``runner``, ``report``, ``plots``, ``notebook``,
   ``__main__``.
"""

__version__ = "0.1.0"

from . import methods, xdistill  # noqa: E402, F401  (registers every method)
