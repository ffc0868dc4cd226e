"""The config schema (audiation/config/config_schema.py): Hydra refuses misspelt keys and wrong types as it composes,
the entry points refuse keys appended with `+`, and the schema agrees with every option's YAML."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import ROOT, run_cli
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf, open_dict

from audiation.config import builder, checks, config_schema, job_plans
from audiation.config.configs import compose
from audiation.errors import AudiationError

GROUPS = ("model", "objective", "parameterization", "augmentation", "optimizer", "logger")
OPTIONS = [(group, path.stem) for group in GROUPS for path in sorted((ROOT / "conf" / group).glob("*.yaml"))]
# Keys a user must give (`???`): they stay missing until then.
REQUIRED = {"config": set(), "examples": {"data.path"}, "directions": {"positive", "negative"}}


@pytest.mark.parametrize("group,option", OPTIONS)
def test_every_option_composes_typed_and_refuses_a_misspelt_key(group, option):
    cfg = compose(f"{group}={option}")
    node = cfg[group]
    schema = OmegaConf.get_type(node)
    assert schema in config_schema.OPTIONS[group].values(), f"{group}={option} has no schema"
    assert set(node.keys()) == {f.name for f in dataclasses.fields(schema)}, f"{group}={option}: YAML and schema differ"
    required = {"objective.direction", "objective.sae"}  # the user's to give
    assert set(OmegaConf.missing_keys(node)) <= required, f"{group}={option} leaves a key unset"
    key = next(k for k in node.keys() if not k.startswith("_"))
    with pytest.raises(ConfigCompositionException, match=f"Could not override '{group}.{key}x'"):
        compose(f"{group}={option}", f"{group}.{key}x=1")


@pytest.mark.parametrize("entry", ["config", "examples", "directions"])
def test_each_entry_point_sets_every_key_its_schema_declares(entry):
    cfg = compose(config_name=entry)
    assert set(OmegaConf.missing_keys(cfg)) == REQUIRED[entry]
    with pytest.raises(ConfigCompositionException, match="Could not override 'sedd'"):
        compose("sedd=1", config_name=entry)


@pytest.mark.parametrize("override,message", [
    ("steps=many", "Value 'many' of type 'str' could not be converted to Integer"),
    ("seed=1.5", "could not be converted to Integer"),
    ("optimizer.lr=fast", "could not be converted to Float"),
    ("regularizer.power=loud", "could not be converted to Float"),
    ("augmentation.with_clean=maybe", "is not a valid bool"),
    ("objective.kind=units", "Invalid value 'units', expected one of [unit, channel, layer, direction, text]"),
])
def test_a_value_of_the_wrong_type_fails_as_hydra_composes(override, message):
    with pytest.raises(ConfigCompositionException) as failed:
        compose(override)
    assert message in str(failed.value.__cause__)


def test_the_command_line_shows_hydras_message_and_writes_nothing(tmp_path):
    result = run_cli("model=random_small", "logger=none", "optimizer.lrr=0.1", f"hydra.run.dir={tmp_path / 'job'}")
    assert result.returncode == 1
    assert "Key 'lrr' not in 'Adam'" in result.stderr
    assert not (tmp_path / "job").exists()


@pytest.mark.parametrize("appended", ["+foo=1", "+optimizer.lrr=0.1", "+quality.drawz=2"])
def test_a_key_appended_with_plus_is_refused_before_any_work(appended):
    cfg = compose("model=random_small", appended)
    with pytest.raises(AudiationError, match=f"{appended[1:].split('=')[0]} is not a key of this config"):
        builder.plan(cfg)


def test_the_other_entry_points_refuse_appended_keys_too(tmp_path):
    with pytest.raises(AudiationError, match="toppk is not a key"):
        job_plans.examples_plan(compose("model=random_small", f"data.path={tmp_path}", "+toppk=3", config_name="examples"))
    with pytest.raises(AudiationError, match="methd is not a key"):
        job_plans.directions_plan(compose("model=random_small", "+methd=mean", config_name="directions"), tmp_path)


def test_a_model_config_of_its_own_keys_stays_free():
    """`model.config` is the architecture's own config: any key of it is the model's business."""
    cfg = compose("model=random_small", "+model.config.layerdrop=0.0")
    assert config_schema.unknown_keys(cfg) == []


def _defaults(function) -> dict:
    import inspect

    return {name: list(p.default) if isinstance(p.default, tuple) else p.default
            for name, p in inspect.signature(function).parameters.items() if p.default is not inspect.Parameter.empty}


def test_an_options_yaml_and_its_function_state_the_same_defaults():
    """A library caller of a function gets what its option's YAML gives a command-line user. A function that
    several options share (Augment: none, standard, strong) is the plain base they each set apart: not compared."""
    from collections import Counter

    from hydra.utils import get_method

    nodes = {(group, option): OmegaConf.to_container(compose(f"{group}={option}")[group], resolve=True)
             for group, option in OPTIONS if group in ("objective", "parameterization", "augmentation")}
    users = Counter(node["_target_"] for node in nodes.values())
    compared = 0
    for (group, option), node in nodes.items():
        if users[node["_target_"]] > 1:
            continue
        defaults = _defaults(get_method(node["_target_"]))
        for key in node.keys() & defaults.keys():
            assert node[key] == defaults[key], f"{group}={option}: {key} is {node[key]} in its YAML, " \
                                               f"{defaults[key]} in {node['_target_']}"
            compared += 1
    assert compared >= 15  # the objectives', fft's, waveform's and speech's numbers


def test_the_kind_an_objective_declares_makes_its_targets_whatever_its_label():
    from audiation.core.kinds import TargetKind

    channel = builder.plan(compose("model=random_small", "objective=channel", "objective.unit=0:2"))
    assert channel.kind is TargetKind.channel and channel.frame is None
    assert [t.name for t in channel.targets] == ["L2-U0-channel", "L2-U1-channel"]
    peak = builder.plan(compose("model=random_small", "objective.unit=3", "objective.name=peak"))  # only a label
    assert peak.kind is TargetKind.unit and peak.frame == peak.geometry.middle_frame()
    assert [t.name for t in peak.targets] == ["L2-U3-peak"]
    cfg = compose("model=random_small", "objective.unit=3", "objective.frame=5")
    at_five = builder.plan(cfg)
    acts = torch.randn(1, at_five.geometry.num_frames, at_five.geometry.num_units)
    _, terms = builder.build_batch(at_five, at_five.targets).objective(acts, torch.ones(1, at_five.geometry.num_samples))
    assert at_five.frame == 5 and terms["activation"].item() == acts[0, 5, 3].item()  # the plan's frame is scored
    with pytest.raises(AudiationError, match="objective.kind=unit needs objective.unit"):  # the key naming them
        builder.plan(compose("model=random_small", "objective=layer", "objective.kind=unit"))


def _every_schema():
    return {*(s for options in config_schema.OPTIONS.values() for s in options.values()),
            *config_schema.ENTRY_POINTS.values(), config_schema.Quality, config_schema.CardExamples,
            config_schema.Regularizer, config_schema.Data, config_schema.ExamplesData}


def test_every_number_of_the_schema_declares_its_range_or_why_it_has_none():
    """A number's range is stated once, beside it (`ranged`); one without says why (`free`)."""
    import typing

    seen = 0
    for schema in _every_schema():
        hints = typing.get_type_hints(schema)
        for f in dataclasses.fields(schema):
            if hints[f.name] is bool or config_schema.number_kind(hints[f.name]) is None:
                assert "range" not in f.metadata or hints[f.name] is typing.Any, f"{schema.__name__}.{f.name}"
                continue
            seen += 1
            declared = f.metadata.get("range") or f.metadata.get("free")
            assert declared, f"{schema.__name__}.{f.name} is a number with no range and no reason"
    assert seen >= 50


def test_the_checks_read_each_range_from_the_schema(monkeypatch):
    """`checks.declared`, and through it the plan, checks what the schema declares and nothing of its own: a
    wrong range planted in the schema is what a valid value then fails."""
    cfg = compose("model=random_small", "steps=7")
    assert checks.declared(cfg)["steps"] == 7 and checks.declared(cfg)["parameterization.rms"] == 0.1
    monkeypatch.setitem(config_schema.ranges(config_schema.Run), "steps", (config_schema.Range(minimum=10), int))
    with pytest.raises(AudiationError, match=r"^steps=7 must be > 10$"):
        builder.plan(cfg)
    monkeypatch.setitem(config_schema.ranges(config_schema.Run), "steps", (config_schema.Range(maximum=5), int))
    monkeypatch.setitem(config_schema.ranges(config_schema.FFT), "rms", (config_schema.Range(minimum=1), float))
    with pytest.raises(AudiationError, match=r"^parameterization.rms=0.1 must be > 1$"):
        checks.declared(compose("model=random_small", "steps=2"))
    with pytest.raises(AudiationError, match=r"^steps=7 must be at most 5$"):
        checks.declared(compose("model=random_small", "steps=7", "parameterization.rms=2"))


def test_an_option_of_the_users_own_is_checked_against_its_groups_ranges():
    cfg = compose("model=random_small", "parameterization=speech")
    with open_dict(cfg):  # the same values, in a file with no schema
        cfg.parameterization = {**OmegaConf.to_container(cfg.parameterization), "bands": 1.5}
    assert OmegaConf.get_type(cfg.parameterization) is dict
    with pytest.raises(AudiationError, match=r"^parameterization.bands=1.5 must be a whole number$"):
        checks.declared(cfg)


@pytest.mark.parametrize("config_name,override,message", [
    ("config", "augmentation.stretch=1", "augmentation.stretch=1 must be below 1"),
    ("config", "threads=0", "threads=0 must be > 0"),
    ("config", "batch_size=two", "batch_size=two must be a number"),
    ("config", "batch_size=2.5", "batch_size=2.5 must be a whole number"),  # typed Any (it may be auto): whole=
    ("config", "examples.min_gap_seconds=-1", "examples.min_gap_seconds=-1 must be >= 0"),
    ("features", "features=1", "features=1 must be > 1"),
    ("features", "memory_gb=0", "memory_gb=0 must be > 0"),
    ("directions", "audiate_steps=0", "audiate_steps=0 must be > 0"),
    ("examples", "data.max_seconds=0", "data.max_seconds=0 must be > 0"),
])
def test_each_entry_points_numbers_meet_their_declared_ranges(config_name, override, message):
    with pytest.raises(AudiationError, match=f"^{message}$"):
        checks.declared(compose("model=random_small", override, config_name=config_name))
