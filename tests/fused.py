"""A tiny XDistillation student, fused, for the tests of the fusion and of the method."""

from __future__ import annotations

import torch

from xdx_lib.models.cae import create_cae
from xdx_lib.models.classifiers import create_model
from xdx_lib.models.fusion import XDistillStudent


def fused_student(fusion: str, freeze: bool = False, seed: int = 0, detach: bool = True,
             output: str = "full") -> XDistillStudent:  # fmt: skip
    """Its CAE (``both``, width 4, ``output``) and a ``student_tiny`` on 28x28 grey images
    of 4 classes, initialised from ``seed``."""
    torch.manual_seed(seed)
    cae = create_cae("both", 1, width=4, output=output)
    s_in = 2 if fusion == "channel" else 1
    return XDistillStudent(cae, create_model("student_tiny", s_in, 4), fusion, freeze, detach)
