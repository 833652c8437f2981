"""Teachers and students: a registry of image classifiers and ``create_model``.

Every model maps images in [0, 1] of shape ``[N, C, H, W]`` to logits ``[N, K]`` and
names three places inside itself that the rest of the library uses:

* ``gradcam_layer``: the module whose output Grad-CAM explains (the last convolutional
  stage, as in Selvaraju et al. 2017);
* ``stages``: the stage outputs attention transfer matches (Zagoruyko & Komodakis 2017);
* ``fusion_layer``: a middle stage where XDistillation's ``feature`` fusion adds the
  autoencoder's features.

Models are built by name (``create_model("cnn_teacher", in_channels=1, num_classes=10)``)
so that a config or a command line can choose any registered one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from xdx_lib.core.registry import Registry

MODELS = Registry("model")


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution, batch norm and ReLU: the building block of the ConvNets here."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=False),
    )


class ConvNet(nn.Module):
    """A plain CNN: stages of 3x3 conv blocks, each later stage halving the resolution.

    For a 28x28 input and three stages the stage outputs are 28x28, 14x14 and 7x7;
    global average pooling and one linear layer give the logits. The same class makes
    the teacher and the students; only widths and depth differ.

    Args:
        in_channels: image channels (1 for Fashion-MNIST, 3 for CIFAR-10; one more when
            XDistillation feeds its explanation map as an extra channel).
        num_classes: number of classes.
        widths: channels of each stage.
        depth: conv blocks per stage.
        dropout: dropout before the linear head.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        widths: Sequence[int] = (16, 32, 64),
        depth: int = 1,
        dropout: float = 0.0,
    ):
        super().__init__()
        stages = []
        cin = in_channels
        for i, w in enumerate(widths):
            blocks = [conv_bn_relu(cin, w, stride=1 if i == 0 else 2)]
            blocks += [conv_bn_relu(w, w) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = w
        self.features = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(cin, num_classes)

    @property
    def stages(self) -> list[nn.Module]:
        return list(self.features)

    @property
    def gradcam_layer(self) -> nn.Module:
        return self.features[-1]

    @property
    def fusion_layer(self) -> nn.Module:
        return self.features[len(self.features) // 2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        return self.classifier(self.dropout(torch.flatten(self.pool(h), 1)))


class CifarResNet(ResNet):
    """torchvision's ResNet with the CIFAR stem (3x3 conv, stride 1, no max-pool).

    He et al.'s ImageNet stem shrinks a 32x32 image to 8x8 before the first stage; the
    CIFAR stem keeps it at 32x32, as in most CIFAR-10 KD work.
    """

    def __init__(self, in_channels: int, num_classes: int, layers=(2, 2, 2, 2)):
        super().__init__(BasicBlock, list(layers), num_classes=num_classes)
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.maxpool = nn.Identity()

    @property
    def stages(self) -> list[nn.Module]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    @property
    def gradcam_layer(self) -> nn.Module:
        return self.layer4

    @property
    def fusion_layer(self) -> nn.Module:
        return self.layer2


@MODELS.register("cnn_teacher")
def cnn_teacher(in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    """The CPU teacher for 28x28 images: widths 32-64-128, two blocks a stage (~0.29M)."""
    return ConvNet(in_channels, num_classes, widths=(32, 64, 128), depth=2, dropout=0.2)


@MODELS.register("resnet18_cifar")
def resnet18_cifar(in_channels: int = 3, num_classes: int = 10) -> nn.Module:
    """The GPU teacher for 32x32 images: ResNet-18 with the CIFAR stem (~11.2M)."""
    return CifarResNet(in_channels, num_classes)


@MODELS.register("student_tiny")
def student_tiny(in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    """The smallest student: widths 8-16-32, one block a stage (~6k parameters)."""
    return ConvNet(in_channels, num_classes, widths=(8, 16, 32), depth=1)


@MODELS.register("student_small")
def student_small(in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    """The default student: widths 16-32-64, one block a stage (~24k parameters)."""
    return ConvNet(in_channels, num_classes, widths=(16, 32, 64), depth=1)


@MODELS.register("student_medium")
def student_medium(in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    """A larger student: widths 16-32-64, two blocks a stage (~80k parameters)."""
    return ConvNet(in_channels, num_classes, widths=(16, 32, 64), depth=2)


def create_model(name: str, in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    """Build the registered model ``name`` for images of ``in_channels`` channels."""
    return MODELS.get(name)(in_channels=in_channels, num_classes=num_classes)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
