"""Domain-adaptation loss terms behave as their papers define them (no data needed)."""

import pytest
import torch

from tlcv.adaptation.methods import (
    DomainBatch,
    available_methods,
    build_methods,
    methods_for,
    parse_methods,
)
from tlcv.adaptation.methods.adabn import recalibrate_batchnorm
from tlcv.adaptation.methods.coral import coral_distance
from tlcv.adaptation.methods.dan import mk_mmd
from tlcv.adaptation.methods.dann import reverse_gradient, warm_up
from tlcv.adaptation.methods.mcc import class_confusion
from tlcv.backbones import create_backbone
from tlcv.errors import TlcvError
from tlcv.heads import BottleneckHead
from tlcv.heads.model import ClassifierModel

NEEDS_SHARED = False  # method maths on generated tensors


def test_gradient_reversal_flips_the_sign_and_scales():
    x = torch.randn(5, 3, requires_grad=True)
    (reverse_gradient(x, 0.7) * torch.arange(3.0)).sum().backward()
    assert torch.allclose(x.grad, -0.7 * torch.arange(3.0).expand(5, 3))
    assert torch.equal(reverse_gradient(x, 1.0), x)  # identity forward
    assert warm_up(0.0) == 0.0 and 0.99 < warm_up(1.0) < 1.0


def test_mmd_of_a_sample_with_itself_is_zero_and_grows_with_a_shift():
    x = torch.randn(64, 16)
    assert mk_mmd(x, x).abs() < 1e-6
    near, far = mk_mmd(x, x + 0.1), mk_mmd(x, x + 3.0)
    assert 0 < near < far


def test_coral_of_equal_covariances_is_zero():
    x = torch.randn(100, 8)
    assert coral_distance(x, x + 5.0).abs() < 1e-6  # a shift keeps the covariance
    assert coral_distance(x, 3.0 * x) > 0.01


def test_mcc_penalises_confusion_not_confidence():
    confident = torch.eye(4).repeat(8, 1) * 20
    confused = torch.zeros(32, 4)
    assert class_confusion(confident) < 0.05 < class_confusion(confused)


def test_method_names_compose_and_unknown_names_list_the_valid_ones():
    assert parse_methods("dann+mcc") == ["dann", "mcc"]
    assert parse_methods("cdan+e") == ["cdan+e"]
    assert parse_methods("CDAN+E+mcc") == ["cdan+e", "mcc"]
    assert build_methods("source-only", 8, 3) == []
    with pytest.raises(TlcvError) as info:
        parse_methods("dann+magic")
    assert "magic" in info.value.message and "coral" in info.value.hint
    assert {"dann", "cdan", "cdan+e", "dan", "coral", "mcc", "adabn", "self-training"} <= set(
        available_methods()
    )


# every registered method with loss terms (source-only has none; adabn only re-estimates BN)
# (the dense ones: tests/test_seg_adapt.py)
LOSS_METHODS = [m for m in methods_for("image") if m not in ("source-only", "adabn")]


@pytest.mark.parametrize("name", LOSS_METHODS)
def test_every_method_gives_finite_terms_with_gradients(name):
    torch.manual_seed(0)
    f = torch.randn(16, 8, requires_grad=True)
    logits = torch.randn(16, 3, requires_grad=True)
    (method,) = build_methods(name, 8, 3)
    batch = DomainBatch(f[:8], f[8:], logits[:8], logits[8:] * 5, progress=0.5)
    terms = method.loss(batch)
    total = sum(v for v in terms.values() if v.requires_grad)
    assert terms and all(torch.isfinite(v) for v in terms.values())
    total.backward()
    assert f.grad is not None or logits.grad is not None


def test_cdan_uses_a_random_multilinear_map_for_many_classes():
    (small,) = build_methods("cdan", 16, 4)
    (large,) = build_methods("cdan", 256, 31)
    assert not small.randomized and large.randomized


def test_adabn_changes_only_batchnorm_statistics():
    backbone = create_backbone("lenet", "none", 28)
    model = ClassifierModel(backbone, BottleneckHead(backbone.feature_dim, 16, 10)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batches = [torch.randn(8, 3, 28, 28) * 3 + 1 for _ in range(4)]
    layers = recalibrate_batchnorm(model, batches, model)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert layers == 3  # two in LeNet, one in the bottleneck
    assert changed and all(
        k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in changed
    )
    assert not model.training  # the mode it had before
