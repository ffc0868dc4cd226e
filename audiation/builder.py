"""The config boundary: a composed Hydra config in, checked values and plain objects out.

Everything below this module (model, objectives, parameterizations, augmentations, trainer, quality)
takes plain objects and never sees a config; the command lines (`run`, `examples`), the jobs and the
benchmark build through here, so each option means the same thing everywhere.

- `plan(cfg)` checks every value of an audiation job, reading only the model's config file (no
  weights), and says what is wrong in one line (AudiationError);
- `build_batch(cfg, plan, targets)` makes one batch's objects: random streams, signal, augmentation,
  objective, optimizer;
- `model_spec`, `parse_units`, `number`: the pieces other entry points share.

Group options are called through their `_target_` with the node's plain values plus the live objects
the callable asks for by name (`streams`, `sample_rate`, `geometry`, `unit`, ...). Hydra's `instantiate`
would turn live objects (tensors, streams) into config nodes. A node's `name` is its label in target
names and W&B, never passed on.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import re
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf

from audiation import config_schema, objectives
from audiation.errors import AudiationError
from audiation.model import (Layer, ModelSpec, frame_geometry, has_ctc_head, load_config, num_frames, num_units,
                             parse_layer, vocabulary)
from audiation.objectives import Geometry, Objective, Target
from audiation.randomness import Streams
from audiation.runtime import resolve_device
from audiation.trainer import Batch, LoopSettings

log = logging.getLogger(__name__)

LOGGER_MODES = ("auto", "online", "offline", "disabled")


def number(value, name: str, kind=float, minimum: float = 0.0, strict: bool = True, finite: bool = True):
    """`value` as a `kind` (int or float) above `minimum` (or at it, when not strict), else one line."""
    if isinstance(value, float):  # as the user wrote it: the schema made `seconds=0` the float 0.0
        value = f"{value:g}"
    if isinstance(value, bool):
        raise AudiationError(f"{name}={value} must be a number")
    try:
        number_ = float(value)
    except (TypeError, ValueError):
        raise AudiationError(f"{name}={value} must be a number") from None
    if math.isnan(number_) or (finite and math.isinf(number_)):
        raise AudiationError(f"{name}={value} must be a finite number")
    if kind is int:
        if not number_.is_integer():
            raise AudiationError(f"{name}={value} must be a whole number")
        number_ = int(number_)
    if number_ < minimum or (strict and number_ == minimum):
        raise AudiationError(f"{name}={value} must be {'>' if strict else '>='} {minimum:g}")
    return number_


def construct(node: DictConfig, *args, **live):
    """Call `node._target_` with the node's values (minus its `name` label) plus those of `live` that
    the callable's signature names."""
    values = OmegaConf.to_container(node, resolve=True)
    values.pop("name", None)
    target = get_method(values.pop("_target_"))
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):  # builtins without a signature: give them everything
        parameters = live
    return target(*args, **values, **{k: v for k, v in live.items() if k in parameters})


def model_spec(model_cfg: DictConfig) -> ModelSpec:
    """The `model` group minus `layer` (the layer is the target's, not the model's)."""
    values = OmegaConf.to_container(model_cfg, resolve=True)
    values.pop("layer", None)
    return ModelSpec(name=str(values["name"]), random_init=bool(values.get("random_init", False)),
                     architecture=values.get("architecture", "wav2vec2"), config=values.get("config") or {},
                     init_seed=int(values.get("init_seed", 0)), normalize=bool(values.get("normalize", True)),
                     sample_rate=int(values.get("sample_rate", 16000)),
                     ensemble=tuple(str(name) for name in _as_list(values.get("ensemble"))))


def _as_list(value) -> list:
    return [] if value is None or value == "" else [value] if isinstance(value, (str, int, float)) else list(value)


def writable_folder(path, name: str) -> Path:
    """A folder that exists or can be made and written to, else one line naming the option."""
    if path is None or not str(path).strip():
        raise AudiationError(f"{name} is empty: it must name a folder")
    folder = Path(str(path)).expanduser()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise AudiationError(f"{name}={path} cannot be a folder: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise AudiationError(f"{name}={path} is not writable ({existing} is read-only for this user)")
    return folder


def check_output_overrides(argv: list[str]) -> None:
    """The job folders given on the command line (`hydra.run.dir=`, `hydra.sweep.dir=`), checked before
    Hydra makes them: Hydra's own failure is a traceback, or an empty value writes into the current folder.
    And text outside ASCII, which Hydra's grammar reads only inside quotes: one line showing how."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    for argument in argv:
        key, sep, value = argument.lstrip("+").partition("=")
        if sep and key in ("hydra.run.dir", "hydra.sweep.dir") and "${" not in value:
            writable_folder(value, key)
        if sep and not argument.isascii():
            try:
                OverridesParser.create().parse_overrides([argument])
            except OverrideParseException:
                words = [w.strip() for w in value.strip("[]").split(",")]
                quoted = ",".join(f'"{w}"' for w in words)
                raise AudiationError(f"{argument}: Hydra reads letters outside ASCII only inside quotes; write "
                                     f"'{key}=[{quoted}]'" if value.startswith("[") or len(words) > 1 else
                                     f"{argument}: Hydra reads letters outside ASCII only inside quotes; write "
                                     f"'{key}=\"{value}\"'") from None


def threads(value) -> int | None:
    return None if value == "auto" else number(value, "threads", int)


SEED_LIMIT = 2**32  # the random streams hash a 32-bit seed: a larger one would silently repeat a smaller one's


def seed(value) -> int:
    seed_ = number(value, "seed", int, strict=False)
    if seed_ >= SEED_LIMIT:
        raise AudiationError(f"seed={value} is too large: seeds are whole numbers 0..{SEED_LIMIT - 1}")
    return seed_


SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")


def safe_name(value, option: str) -> str:
    """A label that becomes part of file and folder names (`objective.name` in `L8-U42-<name>`): letters,
    digits and `_ . + -`, not starting with a dot, so no name can leave the job folder or break a page."""
    text = str(value)
    if not SAFE_NAME.fullmatch(text) or ".." in text:
        raise AudiationError(f"{option}={text!r} cannot be part of a file name: use up to 64 letters, digits "
                             "and _ . + - (not starting with . or holding ..)")
    return text


# --- targets ---------------------------------------------------------------------------------------------


def parse_units(spec, count: int, where: str, name: str = "objective.unit") -> list[int]:
    """Units as a list: an int, a list of ints, "a:b[:step]" or "all". Out of range (a range past the end
    included) and repeated units are errors."""
    valid = f"valid: 0..{count - 1}"
    if isinstance(spec, str) and spec.strip() == "all":
        return list(range(count))
    if isinstance(spec, str) and re.fullmatch(r"\s*\d*\s*:\s*\d*\s*(:\s*\d+\s*)?", spec):
        start, stop, *step = (int(p) if p.strip() else None for p in spec.split(":"))
        if (stop or 0) > count or (start or 0) >= count:
            raise AudiationError(f"{name}={spec} runs past the last unit of {where} ({valid})")
        units = list(range(count))[slice(start, stop, *step)]
        if not units:
            raise AudiationError(f"{name}={spec} selects no units of {where} ({valid})")
        return units
    values = [spec] if isinstance(spec, (str, int, float)) else list(spec)
    units = []
    for value in values:
        text = str(value).strip()
        if not re.fullmatch(r"-?\d+", text):
            raise AudiationError(f"{name}={value} is not a unit index ({valid})")
        unit = int(text)
        if not 0 <= unit < count:
            raise AudiationError(f"{name}={unit} is out of range for {where} ({valid})")
        if unit in units:
            raise AudiationError(f"{name} names unit {unit} twice: each target once")
        units.append(unit)
    return units


def parse_directions(spec, count: int) -> np.ndarray:
    """`objective.direction`: a .npy path (one vector or a stack of them) or an inline list."""
    if isinstance(spec, str):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise AudiationError(f"objective.direction={spec}: no such .npy file")
        try:
            vectors = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            raise AudiationError(f"objective.direction={spec} could not be read: {error}") from None
        if not isinstance(vectors, np.ndarray):  # an .npz archive
            vectors.close()
            raise AudiationError(f"objective.direction={spec} is an .npz archive; give one .npy array")
    else:
        vectors = list(spec) if not isinstance(spec, (int, float)) else [spec]
    try:
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    except (TypeError, ValueError):
        raise AudiationError(f"objective.direction={spec} is not numbers: give a .npy array of floats or an "
                             "inline list of numbers") from None
    if vectors.ndim != 2 or vectors.shape[1] != count:
        raise AudiationError(f"objective.direction has shape {vectors.shape}; expected ({count},) or (k, {count})")
    if not np.all(np.isfinite(vectors)) or not np.all(np.linalg.norm(vectors, axis=1) > 0):
        raise AudiationError("objective.direction contains a zero or non-finite vector")
    return vectors


def parse_texts(spec, tokens: list[str] | None, where: str) -> list[tuple[str, list[int]]]:
    """`objective.text`: a word or a list of them, each as (text, token ids) in the model's CTC vocabulary
    (spaces are its word separator `|`)."""
    if tokens is None:
        raise AudiationError(f"objective=text needs a CTC model with a vocabulary; {where} has none")
    texts = [spec] if isinstance(spec, str) else list(spec) if spec is not None else []
    if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise AudiationError("objective.text must be a word or a list of words")
    index = {token: i for i, token in enumerate(tokens) if token}
    letters_of = [t for t in index if len(t) == 1 and t.isalpha()]
    # A one-case vocabulary (wav2vec2-base-960h's is upper case, tiny's lower): "Moon" means its letters.
    fold = (str.upper if all(t.isupper() for t in letters_of) else str.lower if all(t.islower() for t in letters_of)
            else str)
    parsed = []
    for text in texts:
        text = " ".join(text.split())
        letters = ["|" if c == " " else fold(c) for c in text]
        unknown = sorted({c for c in letters if c not in index})
        if unknown:
            known = "".join(t for t in index if len(t) == 1 and t != "|")
            raise AudiationError(f"objective.text={text}: {', '.join(map(repr, unknown))} not in the vocabulary of "
                                 f"{where} (it has: {known})")
        parsed.append((text, [index[c] for c in letters]))
    names = [Target("text", Layer("logits"), 0, text=t).name for t, _ in parsed]
    if len(set(names)) < len(names):
        raise AudiationError("objective.text names a text twice (or two that make the same target name): "
                             "each target once")
    return parsed


def frames_needed(ids: list[int]) -> int:
    """CTC needs a frame per character, and a blank between two equal ones."""
    return len(ids) + sum(a == b for a, b in zip(ids, ids[1:]))


def with_samples(targets: list[Target], samples: int) -> list[Target]:
    """K signals per target (samples=K), side by side; sample 0 keeps the target's own stream, so it is
    what samples=1 gives."""
    if samples == 1:
        return targets
    return [replace(t, sample=s, key=t.key if s == 0 else zlib.crc32(f"{t.key}-s{s}".encode()))  # own streams
            for t in targets for s in range(samples)]


def expand_targets(objective_cfg: DictConfig, layer: Layer, count: int, texts: list[str] = ()) -> list[Target]:
    """The rows of a job: one per unit, per direction, per text (parsed by `parse_texts`), or the one
    whole-layer target."""
    label = str(objective_cfg.name)
    if "text" in objective_cfg:
        return [Target(label, layer, key=zlib.crc32(text.encode()), text=text) for text in texts]
    if "unit" in objective_cfg:
        units = parse_units(objective_cfg.unit, count, f"layer {layer.label}")
        return [Target(label, layer, key=u, unit=u) for u in units]
    if "direction" in objective_cfg:
        if OmegaConf.is_missing(objective_cfg, "direction"):
            raise AudiationError("objective.direction is required: a .npy path or an inline list")
        vectors = parse_directions(objective_cfg.direction, count)
        return [Target(label, layer, key=i, vector=v, index=i) for i, v in enumerate(vectors)]
    return [Target(label, layer, key=0)]


# --- the job plan ----------------------------------------------------------------------------------------


@dataclass
class Plan:
    """A checked audiation job: everything decided before the model's weights are loaded."""

    spec: ModelSpec
    layer: Layer
    targets: list[Target]
    geometry: Geometry
    frame: int | None  # the target frame of unit audiation, else None
    device: str
    batch_size: int | str  # "auto": chosen once the model is loaded
    settings: LoopSettings
    labels: dict = field(default_factory=dict)  # what runs are filtered and compared by
    token_ids: dict[str, list[int]] = field(default_factory=dict)  # objective=text: each text's CTC ids
    blank: int = 0  # the CTC blank (pad) id
    initial: torch.Tensor | None = None  # parameterization.init: the clip, at the model's rate and length
    listener: ModelSpec | None = None  # quality.listener: a second CTC model with the same vocabulary
    data_files: list[Path] = field(default_factory=list)  # quality.data: its audio files, listed once

    @property
    def objective(self) -> str:
        return self.targets[0].objective


def labels(cfg: DictConfig) -> dict:
    """The options a user filters and compares runs by, from the options' own `name` labels (the objective's
    is part of every target's folder name, so each is checked to be safe as one)."""
    return {"model": model_spec(cfg.model).short_name,
            **{group: safe_name(cfg[group].name, f"{group}.name")
               for group in ("objective", "parameterization", "augmentation")}}


def known_keys(cfg: DictConfig) -> None:
    """Refuse keys no schema declares: Hydra checks the others' names and types as it composes, but lets
    `+key=value` append anything (audiation/config_schema.py)."""
    unknown = config_schema.unknown_keys(cfg)
    if unknown:
        more = f" (nor are {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise AudiationError(f"{unknown[0]} is not a key of this config{more}: check its spelling against conf/ "
                             "(or --help)")


def plan(cfg: DictConfig) -> Plan:
    """Check every user-facing value, reading only the model's config file. Raises AudiationError."""
    known_keys(cfg)
    labels_ = labels(cfg)
    seed(cfg.seed)
    steps = number(cfg.steps, "steps", int)
    settings = LoopSettings(steps=steps, log_every=number(cfg.log_every, "log_every", int),
                            precision=str(cfg.precision))
    seconds = number(cfg.parameterization.seconds, "parameterization.seconds")
    number(cfg.optimizer.lr, "optimizer.lr")
    for key, value in cfg.regularizer.items():
        number(value, f"regularizer.{key}", minimum=-math.inf)
    for key in ("max_shift_ms", "stretch", "gain_db", "room_ms"):
        if key in cfg.augmentation:
            number(cfg.augmentation[key], f"augmentation.{key}", strict=False)
    if cfg.augmentation.get("stretch", 0) >= 1:
        raise AudiationError(f"augmentation.stretch={cfg.augmentation.stretch:g} must be < 1")
    batch_size = "auto" if cfg.batch_size == "auto" else number(cfg.batch_size, "batch_size", int)
    if cfg.precision not in ("fp32", "bf16"):
        raise AudiationError(f"precision={cfg.precision} is not one of fp32, bf16")
    number(cfg.quality.draws, "quality.draws", int, strict=False)
    if cfg.regularizer.get("stay_close") and not cfg.parameterization.get("init"):
        raise AudiationError("regularizer.stay_close needs parameterization.init=<audio file> to stay close to")
    data_files = []
    if cfg.quality.data:
        from audiation import data

        if not Path(cfg.quality.data).expanduser().is_dir():
            raise AudiationError(f"quality.data={cfg.quality.data} is not a folder")
        data_files = data.list_audio(cfg.quality.data, name="quality.data")
        writable_folder(cfg.quality.cache_dir, "quality.cache_dir")
        number(cfg.examples.top_k, "examples.top_k", int, strict=False)  # 0: no natural examples
        number(cfg.examples.clip_seconds, "examples.clip_seconds")
        number(cfg.examples.min_gap_seconds, "examples.min_gap_seconds", strict=False, finite=False)
    check_logger(cfg.logger)
    threads(cfg.threads)
    device = resolve_device(cfg.device)
    spec = model_spec(cfg.model)
    initial = initial_clip(cfg, spec.sample_rate, round(seconds * spec.sample_rate))  # read once, checked now
    config = load_config(spec)
    token_ids = {}
    if "text" in cfg.objective:  # a text is read by the CTC head: the layer is the logits, whatever model.layer says
        if not has_ctc_head(config):
            raise AudiationError(f"objective=text needs a CTC model (*ForCTC); {spec.short_name} has no CTC head")
        layer = Layer("logits")
        token_ids = dict(parse_texts(OmegaConf.to_container(cfg.objective, resolve=True)["text"],
                                     vocabulary(spec, config.vocab_size), spec.short_name))
    else:
        layer = parse_layer(cfg.model.layer, config)
    if cfg.objective.get("log_softmax") and layer.kind != "logits":
        raise AudiationError(f"objective.log_softmax is for CTC outputs (model.layer=logits), not layer {layer.label}")
    if spec.ensemble and layer.kind != "logits":
        raise AudiationError(f"model.ensemble averages CTC logits: it needs model.layer=logits or objective=text "
                             f"(units of layer {layer.label} are not the same unit in another model)")
    for name in spec.ensemble:
        ctc_peer("model.ensemble", name, spec, config, same_frames=True)
    samples = round(seconds * spec.sample_rate)
    targets = with_samples(expand_targets(cfg.objective, layer, num_units(layer, config), list(token_ids)),
                           number(cfg.samples, "samples", int))
    if number(cfg.diversity, "diversity", strict=False) and cfg.samples < 2:
        raise AudiationError(f"diversity={cfg.diversity:g} needs samples >= 2 to push apart")
    check_memory(samples, config, 1 if batch_size == "auto" else min(batch_size, len(targets)), device, seconds)
    hop, receptive = frame_geometry(layer, config)
    geometry = Geometry(samples, num_frames(layer, config, samples), num_units(layer, config), hop, receptive,
                        spec.sample_rate)
    for text, ids in token_ids.items():
        if frames_needed(ids) > geometry.num_frames:
            raise AudiationError(f"objective.text={text} needs {frames_needed(ids)} frames; {seconds:g} s has "
                                 f"{geometry.num_frames} (set parameterization.seconds higher)")
    frame = None
    if "frame" in cfg.objective:
        frame = geometry.middle_frame() if cfg.objective.frame is None else int(cfg.objective.frame)
        if not 0 <= frame < geometry.num_frames:
            raise AudiationError(f"objective.frame={frame} is out of range ({seconds:g} s at layer "
                                 f"{layer.label} has frames 0..{geometry.num_frames - 1})")
    listener = listener_spec(cfg, spec, config, layer)
    return Plan(spec, layer, targets, geometry, frame, device, batch_size, settings, labels_, token_ids,
                config.pad_token_id or 0, initial, listener, data_files)


def listener_spec(cfg: DictConfig, spec: ModelSpec, config, layer: Layer) -> ModelSpec | None:
    """`quality.listener`, for targets a CTC model can hear (logits and texts); None for the others."""
    name = cfg.quality.get("listener")
    if not name or layer.kind != "logits":
        return None
    same = {str(Path(str(member)).expanduser().resolve()) for member in (spec.name, *spec.ensemble)}
    if str(Path(str(name)).expanduser().resolve()) in same:
        log.warning("quality.listener=%s is one of the models audiated: it cannot judge them, so no listener "
                    "numbers for this run", name)
        return None
    return ctc_peer("quality.listener", name, spec, config)


def ctc_peer(option: str, name, spec: ModelSpec, config, same_frames: bool = False) -> ModelSpec:
    """Another CTC model with the model's own vocabulary, so a letter is the same unit in both; for an
    ensemble also the same conv geometry, so their frames line up."""
    own = spec.members()[0]
    peer = own.peer(name)
    try:
        peer_config = load_config(peer)
    except AudiationError as error:
        raise AudiationError(f"{option}={name}: {str(error).split(': ', 1)[-1]}") from None
    if not has_ctc_head(peer_config):
        raise AudiationError(f"{option}={name} has no CTC head: it cannot transcribe")
    if vocabulary(peer, peer_config.vocab_size) != vocabulary(own, config.vocab_size):
        raise AudiationError(f"{option}={name} does not share {own.short_name}'s vocabulary")
    if same_frames and (list(peer_config.conv_kernel), list(peer_config.conv_stride)) != (
            list(config.conv_kernel), list(config.conv_stride)):
        raise AudiationError(f"{option}={name} has another frame grid (conv kernels and strides) than "
                             f"{own.short_name}: their logits cannot be averaged frame by frame")
    return peer


def check_logger(logger_cfg) -> None:
    if logger_cfg is not None and logger_cfg.get("enabled", False) and logger_cfg.mode not in LOGGER_MODES:
        raise AudiationError(f"logger.mode={logger_cfg.mode} is not one of {', '.join(LOGGER_MODES)}")


# Peak bytes of a forward+backward per input sample and first-conv channel: measured 3.9 GB for 64 x 1 s
# of wav2vec2-base at layer 12 on a GPU, i.e. ~2.4 KB per sample, ~4.7 per sample and channel; rounded up.
BYTES_PER_SAMPLE_AND_CHANNEL = 6


def check_memory(samples: int, config, batch: int, device: str, seconds: float) -> None:
    """Refuse, before allocating, a signal whose forward+backward cannot fit in this machine's memory."""
    need = BYTES_PER_SAMPLE_AND_CHANNEL * config.conv_dim[0] * samples * batch
    if device.startswith("cuda"):
        available, _total = torch.cuda.mem_get_info(torch.device(device))
        where = "GPU memory"
    else:
        try:
            with open("/proc/meminfo") as meminfo:
                available = next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable"))
        except (OSError, StopIteration):
            return
        where = "memory"
    if need > available:
        fits = seconds * available / need
        raise AudiationError(f"parameterization.seconds={seconds:g} needs about {need / 2**30:.0f} GiB for a batch of "
                             f"{batch}; {available / 2**30:.0f} GiB of {where} is free (about {fits:.0f} s fits)")


# --- one batch's objects ---------------------------------------------------------------------------------


def initial_clip(cfg: DictConfig, sample_rate: int, num_samples: int | None = None) -> torch.Tensor | None:
    """`parameterization.init`: the audio file to start from, mono at the model's rate, cut or zero-padded
    to `num_samples`; None when the signal starts from noise."""
    path = cfg.parameterization.get("init")
    if not path:
        return None
    from audiation import data

    if not Path(str(path)).expanduser().is_file():
        raise AudiationError(f"parameterization.init={path}: no such audio file")
    try:
        clip = data.read_audio(Path(str(path)).expanduser(), sample_rate)
    except data.UnreadableAudio as error:
        raise AudiationError(f"parameterization.init={path} could not be read: {error}") from None
    if num_samples is not None:
        clip = np.pad(clip[:num_samples], (0, max(0, num_samples - len(clip))))
    return torch.from_numpy(clip)


def build_objective(cfg: DictConfig, plan_: Plan, targets: list[Target]) -> Objective:
    """The target's objective minus the regularisers, its index tensors made on the device once."""
    device, geometry = plan_.device, plan_.geometry
    live = {"geometry": geometry}
    if targets[0].text is not None:
        ids = [plan_.token_ids[t.text] for t in targets]
        live["tokens"] = torch.tensor([i + [0] * (max(map(len, ids)) - len(i)) for i in ids], device=device)
        live["lengths"] = torch.tensor([len(i) for i in ids], device=device)
        live["blank"] = plan_.blank
    elif targets[0].unit is not None:
        live["unit"] = torch.tensor([t.unit for t in targets], device=device)
    elif targets[0].vector is not None:
        live["direction"] = torch.from_numpy(np.stack([t.vector for t in targets])).to(device)
    node = OmegaConf.masked_copy(cfg.objective, [k for k in cfg.objective if k not in ("unit", "direction", "text")])
    if plan_.frame is not None:
        node.frame = plan_.frame
    objective = construct(node, **live)
    regularizer = cfg.regularizer
    if regularizer.power:
        objective = objective - regularizer.power * objectives.power()
    if regularizer.high_frequency:
        objective = objective - regularizer.high_frequency * objectives.high_frequency(
            geometry, regularizer.cutoff_hz, device)
    if cfg.diversity and targets[0].sample is not None:
        groups = {name: i for i, name in enumerate(dict.fromkeys(t.group for t in targets))}
        ids = torch.tensor([groups[t.group] for t in targets], device=device)
        objective = objective - cfg.diversity * objectives.diversity(ids)
    if regularizer.get("stay_close"):
        clip = plan_.initial.to(device)
        objective = objective - regularizer.stay_close * objectives.stay_close(clip.expand(len(targets), -1))
    return objective


def build_augment(cfg: DictConfig, plan_: Plan):
    return construct(cfg.augmentation, sample_rate=plan_.geometry.sample_rate).to(plan_.device)


def build_batch(cfg: DictConfig, plan_: Plan, targets: list[Target]) -> Batch:
    """Everything one batch of targets needs in the loop, one row per target."""
    streams = Streams(cfg.seed, [t.key for t in targets], plan_.device)
    geometry, clip = plan_.geometry, plan_.initial
    node = OmegaConf.masked_copy(cfg.parameterization, [k for k in cfg.parameterization if k != "init"])
    parameterization = construct(node, streams=streams, sample_rate=geometry.sample_rate,
                                 initial=None if clip is None else clip.expand(len(targets), -1))
    optimizer = construct(cfg.optimizer, parameterization.parameters())
    return Batch(targets, streams, parameterization, build_augment(cfg, plan_), build_objective(cfg, plan_, targets),
                 optimizer)
