"""Networks: the classifiers, the CAE and the student fused with it.

- :mod:`~xdx_lib.models.classifiers`: teachers and students by name;
- :mod:`~xdx_lib.models.features`: hooks that read a network's stage outputs, and the
  attention maps of them;
- :mod:`~xdx_lib.models.cae`: the convolutional autoencoder that reproduces explanations;
- :mod:`~xdx_lib.models.fusion`: the XDistillation student, which sees the image and the
  CAE's map.
"""
