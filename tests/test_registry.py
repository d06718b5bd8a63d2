"""The one registry helper every name -> thing table uses."""

from __future__ import annotations

import pytest

from tlcv.adaptation.methods import METHODS
from tlcv.backbones import list_backbones
from tlcv.backbones.registry import BACKBONES
from tlcv.errors import TlcvError
from tlcv.experiments import EXPERIMENTS
from tlcv.heads.classifiers import CLASSIFIERS
from tlcv.registry import Registry
from tlcv.strategies import STRATEGIES

NEEDS_SHARED = False

ALL = {
    "backbone": BACKBONES,
    "strategy": STRATEGIES,
    "adaptation method": METHODS,
    "classifier": CLASSIFIERS,
    "experiment": EXPERIMENTS,
}


def test_a_second_registration_under_a_taken_name_is_refused():
    reg: Registry[int] = Registry("widget")
    reg.register("a")(1)
    with pytest.raises(ValueError, match="widget 'a' registered twice"):
        reg.register("a")(2)
    assert reg.get("a") == 1


@pytest.mark.parametrize("kind", list(ALL))
def test_every_registry_refuses_duplicates_and_names_its_entries(kind):
    reg = ALL[kind]
    names = reg.names()
    assert names, f"nothing registered as a {kind}"
    with pytest.raises(ValueError, match="registered twice"):
        reg.add(names[0], reg.get(names[0]))
    with pytest.raises(TlcvError) as info:
        reg.get("no-such-thing")
    message = str(info.value)
    assert f"unknown {kind} 'no-such-thing'" in message
    assert all(name in message for name in names[:3])


def test_registries_load_their_modules_on_first_use():
    assert {"features", "finetune", "scratch", "classical"} <= set(STRATEGIES.names())
    assert {"data-efficiency", "convergence", "generalization"} <= set(EXPERIMENTS.names())
    assert {"dann", "cdan", "dan", "mcc", "source-only"} <= set(METHODS.names())
    assert "mobilenet_v2" in list_backbones()
