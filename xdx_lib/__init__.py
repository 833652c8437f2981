"""xdx: XDistillation (explainable knowledge distillation) as a PyTorch library.

Importing the package registers every model, explainer and method, so that any of them
can be named in a config.
"""

__version__ = "0.1.0"
