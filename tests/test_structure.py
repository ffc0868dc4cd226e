"""The shape of the code: no import cycles, no module imports a command line, and every option of every
config group composes and builds."""

from __future__ import annotations

import ast

import numpy as np
import pytest
from conftest import CONF, ROOT, compose

from audiation.config.builder import build_batch, plan
from audiation.config.configs import ASSETS

PACKAGE = ROOT / "audiation"
COMMAND_LINES = {"audiation.run", "audiation.examples", "audiation.gallery", "audiation.report",
                 "audiation.directions", "audiation.features"}


def _imports() -> dict[str, set[str]]:
    """{module: audiation modules it imports}, top-level and function-level imports alike."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("audiation")}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("audiation"):
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names}
        graph[name] = {m for m in found if m != name}
    return {name: {m for m in deps if m in graph} for name, deps in graph.items()}


def test_no_import_cycles_and_no_module_imports_a_command_line():
    graph = _imports()
    assert len(graph) > 15
    for module, deps in graph.items():
        assert not deps & COMMAND_LINES, f"{module} imports the command line {deps & COMMAND_LINES}"

    def visit(module, path):
        for dep in graph[module] - {"audiation"}:  # the package __init__ only registers a resolver
            assert dep not in path, f"import cycle: {' -> '.join(path + [dep])}"
            visit(dep, path + [dep])

    for module in graph:
        visit(module, [module])


# The package's folders from the top down (the README's layout): a module imports only its own folder and
# the folders below its own. The command lines and `api` sit above all of them, `errors` and `console` below.
LAYERS = ["jobs", "browser", "config", "hearing", "core", "data", "outputs", "models", "errors", "console"]


def _layer(module: str) -> int:
    """The layer of a module of the package: -1 for the commands, `api` and the package itself."""
    part = module.split(".")[1] if "." in module else ""
    return LAYERS.index(part) if part in LAYERS else -1


def test_every_folder_imports_only_the_folders_below_it():
    graph = _imports()
    assert {name.split(".")[1] for name in graph if name.count(".") >= 2} == set(LAYERS) - {"errors", "console"}
    upward = [f"{module} imports {dep}" for module, deps in graph.items() for dep in deps
              if _layer(module) >= 0 and dep != "audiation" and _layer(dep) < _layer(module)]
    assert not upward, upward


def test_a_module_over_350_lines_says_why_at_its_top():
    for path in PACKAGE.rglob("*.py"):
        if len(path.read_text().splitlines()) > 350:
            assert "in one module:" in (ast.get_docstring(ast.parse(path.read_text())) or ""), path.name


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


SETS = [f"model={m}" for m in _options("model") if m != "wav2vec2_base"]  # that one needs the hub
SETS += [f"{g}={o}" for g in ("objective", "parameterization", "augmentation", "optimizer", "logger")
         for o in _options(g)]


@pytest.mark.parametrize("option", SETS)
def test_every_option_of_every_group_composes_and_builds(option, tmp_path):
    model = "model=tiny" if option == "objective=text" else "model=random_small"  # text needs a CTC model
    overrides = ([] if option.startswith("model=") else [model]) + ["steps=1", option]
    if option == "objective=direction":
        np.save(tmp_path / "d.npy", np.ones(32, dtype=np.float32))
        overrides.append(f"objective.direction={tmp_path / 'd.npy'}")
    if option == "objective=layer":
        overrides.append("model.layer=conv3")
    if option == "objective=feature":  # an untrained SAE of random_small's layer 2 will do
        from audiation.config import builder
        from audiation.core import sae

        spec = builder.model_spec(compose("model=random_small").model)
        sae.SAE(32, 16, 2).save(tmp_path / "sae", {"model": sae.identity(spec), "layer": "L2", "units": 32,
                                                   "features": 16, "k": 2, "firing_frequency": [0.1] * 16,
                                                   "nearest_features": [[[(i + 1) % 16, 0.5]] for i in range(16)]})
        overrides += [f"objective.sae={tmp_path / 'sae'}", "objective.kind=unit"]
    cfg = compose(*overrides)
    job = plan(cfg)
    batch = build_batch(job, job.targets[:1])
    signal = batch.parameterization()
    assert signal.shape == (1, job.geometry.num_samples)
    assert batch.augment(signal, batch.streams).shape == signal.shape
    group, choice = option.split("=")
    if group in ("objective", "parameterization", "augmentation"):
        assert job.labels[group] == choice  # labels come from the options' names, not from Python


def test_the_demo_experiment_audiates_a_character_unit_the_model_card_names():
    from test_tiny_model import _card_units

    cfg = compose("experiment=demo")
    assert (str(cfg.model.layer), cfg.objective.unit) in {(layer, unit) for layer, unit, _ in _card_units()}
    assert cfg.logger.mode == "offline" and plan(cfg).spec.short_name == "tiny-w2v2-espeak"
    assert cfg.quality.data == str(ASSETS / "speech-slice")  # the page names the unit's phone, shows its examples
    assert len(list((ASSETS / "speech-slice").glob("*.flac"))) == 160


# One job that passes through every part the config could reach: W&B (disabled: no files), the data's
# cache and its natural examples, the quality measures.
PASSING_JOB = ["model=random_small", "logger=wandb", "logger.mode=disabled", "threads=1", "steps=2",
               "objective.unit=0:2", "quality.draws=1", "quality.judges=false", "examples.top_k=1",
               f"quality.data={ROOT / 'audiation' / 'assets' / 'speech-slice'}"]


@pytest.fixture(scope="module")
def passing_job(tmp_path_factory):
    """PASSING_JOB's config, its data's cache shared by the tests that run it (built once)."""
    return compose(*PASSING_JOB, f"quality.cache_dir={tmp_path_factory.mktemp('cache')}")


def _config_nodes(value, where: str) -> list[str]:
    """Where config nodes hide in `value`: itself, a dataclass's fields, a dict's values, a sequence's items."""
    from dataclasses import fields, is_dataclass

    from omegaconf import Container

    if isinstance(value, Container):
        return [where]
    if is_dataclass(value):
        return [n for f in fields(value) for n in _config_nodes(getattr(value, f.name), f"{where}.{f.name}")]
    if isinstance(value, dict):
        return [n for k, v in value.items() for n in _config_nodes(v, f"{where}[{k!r}]")]
    if isinstance(value, (list, tuple)):
        return [n for i, v in enumerate(value) for n in _config_nodes(v, f"{where}[{i}]")]
    return []


def _handed_a_config(call) -> set[str]:
    """The functions outside `audiation.config` that are handed a config node while `call()` runs."""
    import sys
    import threading

    from omegaconf import Container

    handed = set()

    def profile(frame, event, _arg):
        module = frame.f_globals.get("__name__", "")
        if event != "call" or not module.startswith("audiation") or module.startswith("audiation.config"):
            return
        code = frame.f_code
        arguments = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
        if any(isinstance(frame.f_locals.get(name), Container) for name in arguments):
            handed.add(f"{module}.{code.co_name}")

    threading.setprofile(profile)  # the writer's thread too
    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    return handed


def test_the_config_goes_no_further_than_the_plan(passing_job, tmp_path):
    """Below `audiation.config`, only `audiate_folder` (the entry that plans) is handed a config node, and
    the plan holds none: the job, its folder, its subscribers, W&B and the measures get plain values."""
    from audiation.jobs.audiate_job import audiate_folder

    assert _config_nodes(plan(passing_job), "plan") == []
    metrics = {}
    handed = _handed_a_config(lambda: metrics.update(audiate_folder(passing_job, tmp_path)))
    assert metrics["targets"][0]["examples"]  # the job did reach the examples
    assert handed == {"audiation.jobs.audiate_job.audiate_folder"}


def test_the_examples_features_and_directions_jobs_see_only_their_plans(tmp_path):
    """Each job's plan (`config/job_plans.py`) holds no config node, and the job, given it, is handed none."""
    from audiation.config import job_plans
    from audiation.jobs.directions_job import directions_job
    from audiation.jobs.examples_job import examples_job
    from audiation.jobs.features_job import features_job

    slice_ = ASSETS / "speech-slice"
    small = ("model=random_small", "model.layer=2", "threads=1", f"data.cache_dir={tmp_path / 'cache'}")
    high, low = ASSETS / "pitch-contrast" / "high", ASSETS / "pitch-contrast" / "low"
    jobs = {
        "examples": (job_plans.examples_plan(compose(*small, "logger=none", f"data.path={slice_}", "units=0:2", "top_k=2",
                                                     config_name="examples")), examples_job),
        "features": (job_plans.features_plan(compose(*small, f"data.path={slice_}", "features=16", "k=2", "steps=2",
                                                     "batch=256", config_name="features")), features_job),
        "directions": (job_plans.directions_plan(compose(*small, f"positive={high}", f"negative={low}",
                                                         config_name="directions"), tmp_path / "directions"),
                       directions_job),
    }
    for name, (job_plan, job) in jobs.items():
        assert _config_nodes(job_plan, name) == []
        results = []
        handed = _handed_a_config(lambda: results.append(job(job_plan, tmp_path / name)))
        assert results and handed == set(), name


def test_a_job_loads_its_models_config_once(passing_job, tmp_path, monkeypatch):
    """The plan loads the model's config and the job reuses it (the encoder already loaded, as in a sweep's
    second job)."""
    from transformers import AutoConfig

    from audiation.jobs.audiate_job import audiate_folder

    audiate_folder(passing_job, tmp_path / "first")
    loads = []
    for loader in ("for_model", "from_pretrained"):
        original = getattr(AutoConfig, loader)
        monkeypatch.setattr(AutoConfig, loader, lambda *args, _original=original, **kwargs: (
            loads.append(args), _original(*args, **kwargs))[1])
    audiate_folder(passing_job, tmp_path / "second")
    assert len(loads) == 1


def test_the_command_lines_and_the_package_import_no_torch():
    """Each Tab of shell completion imports the command line (and `import audiation` comes first in every
    notebook): torch takes seconds to import, so it is imported only once a job runs."""
    import subprocess
    import sys

    commands = ["audiation.run", "audiation.examples", "audiation.features", "audiation.directions"]
    probe = f"import sys; import {', '.join(commands)}; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "False"
