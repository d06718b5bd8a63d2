"""Small CNNs trained from scratch, for tiny images such as digits (no pretrained weights).

LeNet is the classic network of the digit domain-adaptation benchmarks (MNIST <-> USPS): two
convolution blocks and a fully connected layer. Batch norm after each convolution makes AdaBN
meaningful; the adaptive pool keeps the feature size fixed whatever ``--image-size`` is.
"""

from __future__ import annotations

from torch import nn

from ..catalog import CATALOG
from .registry import BackboneSpec, LayerGroup, Preprocessing, register_backbone


class LeNet(nn.Module):
    def __init__(self, num_classes: int = 10, feature_dim: int = 500):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 20, kernel_size=5),
            nn.BatchNorm2d(20),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(20, 50, kernel_size=5),
            nn.BatchNorm2d(50),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
        )
        self.fc = nn.Sequential(nn.Linear(50 * 16, feature_dim), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(feature_dim, num_classes)

    def forward(self, x):
        return self.classifier(self.fc(self.features(x)))


def _strip(model: LeNet) -> LeNet:
    model.classifier = nn.Identity()
    return model


register_backbone(
    BackboneSpec(
        name="lenet",
        build=LeNet,
        strip_head=_strip,
        feature_dim=CATALOG["lenet"].feature_dim,
        preprocessing=Preprocessing(
            input_size=28, resize_size=28, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)
        ),
        weights=(),
        layer_groups=lambda m: [
            LayerGroup("conv1", ("features.0", "features.1")),
            LayerGroup("conv2", ("features.4", "features.5")),
            LayerGroup("fc", ("fc",)),
        ],
        family="small",
        description=CATALOG["lenet"].description,
        cam_layer="features.6",  # the second conv block's ReLU, before pooling
    )
)
