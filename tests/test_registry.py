"""The Registry: names, patterns, close matches, entry-point plugins."""

from __future__ import annotations

from importlib import metadata

import pytest
from torch import nn

from unetzoo.registry import Registry, UnknownNameError


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, group: str, entries: dict[str, str]) -> None:
    eps = metadata.EntryPoints(metadata.EntryPoint(name, value, group) for name, value in entries.items())
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: eps.select(group=group))


def test_register_get_names_and_patterns() -> None:
    reg = Registry("widget")
    reg.add("gamma", 3)
    reg.add("alpha", 1)
    reg.add("beta_two", 2)

    assert reg.names() == ["alpha", "beta_two", "gamma"]  # sorted, not in the order of registration
    assert [e.name for e in reg] == ["alpha", "beta_two", "gamma"]
    assert reg.names("*a") == ["alpha", "gamma"]
    assert reg.names("beta") == []  # a pattern matches whole names
    assert reg.names("?eta_*") == ["beta_two"]
    assert reg.get("beta_two") == 2 and reg.get("gamma") == 3 and "gamma" in reg and "delta" not in reg
    with pytest.raises(UnknownNameError, match="unknown widget 'alpah'; closest: alpha"):
        reg.get("alpah")


def test_duplicate_names_are_errors_naming_both() -> None:
    reg = Registry("widget")
    reg.add("alpha", 1)
    with pytest.raises(ValueError, match="'alpha' from other-pkg clashes with .* from unetzoo"):
        reg.add("alpha", 2, source="other-pkg")


def test_plugins_load_lazily_and_failures_do_not_break_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(
        monkeypatch, "test.widgets",
        {"good": "json:dumps", "broken": "no_such_module_xyz:thing"},
    )  # fmt: skip
    reg = Registry("widget", group="test.widgets")
    reg.add("builtin", 0)
    with pytest.warns(UserWarning, match="widget plugin broken .* failed to load"):
        names = reg.names()
    assert names == ["builtin", "good"]
    assert "ModuleNotFoundError" in next(iter(reg.plugin_errors.values()))
    import json

    assert reg.get("good") is json.dumps


def test_plugin_clashing_with_builtin_is_rejected_naming_both(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch, "test.widgets", {"builtin": "json:dumps"})
    reg = Registry("widget", group="test.widgets")
    reg.add("builtin", 0)
    with pytest.warns(UserWarning, match="widget plugin builtin .*json:dumps.* rejected: .* from unetzoo"):
        assert reg.names() == ["builtin"]
    assert reg.get("builtin") == 0


def test_unknown_names_suggest_a_listing_call_that_exists() -> None:
    import re

    import unetzoo
    from unetzoo.data import DATASETS
    from unetzoo.encoders.encoder_weights import ENCODER_WEIGHTS
    from unetzoo.losses import LOSSES
    from unetzoo.models import MODELS
    from unetzoo.weight_tags import WEIGHTS

    for registry in (MODELS, LOSSES, DATASETS, ENCODER_WEIGHTS, WEIGHTS):
        with pytest.raises(UnknownNameError) as err:
            registry.get("no-such-name")
        call = re.search(r"See (unetzoo[\w.]*)\(\)", str(err.value)).group(1)
        obj = unetzoo
        for part in call.split(".")[1:]:
            obj = getattr(obj, part)  # the suggested function exists and lists the names
        assert obj() == registry.names()


def tiny_plugin_model(**overrides) -> nn.Module:
    """A model factory as a plugin package would expose it through the ``unetzoo.models`` group."""
    return nn.Conv2d(overrides.get("in_channels", 3), overrides.get("classes", 1), 1)


def test_plugin_models_are_listed_filtered_and_built(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import unetzoo
    from unetzoo.models import factory

    builtin = [(e.name, e.obj) for e in factory.MODELS]
    fake_entry_points(
        monkeypatch, "unetzoo.models", {"zz_plugin_net": "tests.test_registry:tiny_plugin_model"}
    )
    models = Registry("model", group=factory.MODELS.group)  # the built-ins, plugins not yet loaded
    for name, obj in builtin:
        models.add(name, obj)
    monkeypatch.setattr(factory, "MODELS", models)
    names = unetzoo.list_models()
    assert names == sorted([name for name, _ in builtin] + ["zz_plugin_net"])
    assert unetzoo.list_models("zz_*") == ["zz_plugin_net"]
    assert "zz_plugin_net" not in unetzoo.list_models("unet*")
    assert models.entry("zz_plugin_net").source == "tests.test_registry:tiny_plugin_model"
    model = unetzoo.create_model("zz_plugin_net", in_channels=2, classes=4)
    assert isinstance(model, nn.Conv2d) and (model.in_channels, model.out_channels) == (2, 4)
    assert model.config == {"architecture": "zz_plugin_net", "in_channels": 2, "classes": 4}
    assert model(torch.zeros(1, 2, 5, 5)).shape == (1, 4, 5, 5)
