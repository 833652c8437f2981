"""Distillation: one file a method, with its loss, over one base.

- :mod:`~xdx_lib.distill.method`: :class:`~xdx_lib.distill.method.Method`, the hooks each
  method overrides, and the method registry;
- :mod:`~xdx_lib.distill.scratch`, :mod:`~xdx_lib.distill.kd` (Hinton et al.),
  :mod:`~xdx_lib.distill.at` (attention transfer), :mod:`~xdx_lib.distill.e2kd` (e2KD) and
  :mod:`~xdx_lib.distill.xdistill` (XDistillation, and ``kd_cae``): the methods;
- :mod:`~xdx_lib.distill.explanation_losses`: the losses between a map and the teacher's;
- :mod:`~xdx_lib.distill.cae_pretraining`: the CAE trained alone on the teacher's maps;
- :mod:`~xdx_lib.distill.cost`: what training a method's student costs, in operations;
- :mod:`~xdx_lib.distill.signals`: what a method reads from the teacher, cached or online.

Importing this package registers every method.
"""

from xdx_lib.distill import at, e2kd, kd, scratch, xdistill  # noqa: F401  (registers them)
