"""xdx: XDistillation (explainable knowledge distillation) as a PyTorch library.

Importing the package registers every dataset, model, explainer and method, so that any of
them can be named in a config: the modules that define them register them when imported,
and this file imports the two that hold the methods and the one that holds the datasets
read from files (the others come with them).

The layers, from the bottom (each module imports only modules of the layers below it):

1. ``registry`` and ``config`` (every name by kind; the run config, which names them only by
   kind), ``cache``, ``keys`` (the names of a result's metrics), ``_utils``: the run cache,
   shared helpers;
2. ``data``, ``sources`` (the datasets read from files), ``models``, ``cae``, ``fusion``
   (the CAE and the student, fused), ``losses``, ``explain``, ``metrics``, ``faithfulness``;
3. ``devices`` (devices, ranks, seeds), ``precision`` (mixed precision, the optimiser
   step), ``batches`` (shuffling, augmentation, the batch dict), ``checkpoints`` (save,
   load, resume), ``train`` (the loop), ``trained`` (trained models and their cached maps
   and logits), ``signals`` (the teacher's signals, cached or online), ``cae_training``
   (the CAE trained alone on the teacher's maps);
4. ``methods`` and ``xdistill`` (how each method trains a student, and what it declares),
   ``interventions`` (other maps shown to an XDistillation student);
5. ``session`` (config -> data, teacher and students, each made once);
6. ``evaluation`` (scores only), ``experiment`` (an experiment's config), ``tuning`` (KD's
   options on the validation split), ``runner``, ``studies``, ``stats``, ``claims``,
   ``tables``, ``readings``, ``plots``, ``notebook``, ``__main__``.
"""

__version__ = "0.1.0"

from . import methods, sources, xdistill  # noqa: E402, F401  (registers methods, datasets)
