"""Checks of single values, each failing with one line that names the option (AudiationError): numbers
(against the ranges the schema declares: `declared`), names that become file names, folders, unit lists,
directions, texts, the logger, memory, keys no schema declares. Every entry point checks its values through
here before any heavy work; `builder.plan` puts them together for an audiation job.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, ListConfig

from audiation.config import config_schema
from audiation.core.kinds import TargetKind
from audiation.errors import AudiationError, shown
from audiation.models.layers import Layer

LOGGER_MODES = ("auto", "online", "offline", "disabled")


def number(value, name: str, kind=float, minimum: float = 0.0, strict: bool = True, finite: bool = True,
           maximum: float = math.inf, below: float | None = None, over: str | None = None):
    """`value` as a `kind` (int or float) above `minimum` (or at it, when not strict), at most `maximum` and
    below `below`, else one line (`over`: the line's end past the maximum)."""
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
    if number_ > maximum:
        raise AudiationError(f"{name}={value} {over}" if over else f"{name}={value} must be at most {maximum:g}")
    if below is not None and number_ >= below:
        raise AudiationError(f"{name}={value} must be below {below:g}")
    return number_


def within(value, name: str, kind, limits: config_schema.Range):
    """`value` in a declared range (`number`), or one of the range's words as it is."""
    if isinstance(value, str) and value in limits.words:
        return value
    return number(value, name, kind, limits.minimum, limits.strict, limits.finite, limits.maximum, limits.below,
                  limits.over)


def declared(cfg: DictConfig) -> dict[str, Any]:
    """The config checked against its schema before any work: no key the schema lacks (`known_keys`), and
    each number in the range declared beside it (config_schema.ranged). Returns the numbers as checked, by
    dotted key (`parameterization.seconds`; a list's items as a list; a word such as `auto` as it is)."""
    known_keys(cfg)
    values: dict[str, Any] = {}
    for path, value, limits, kind in config_schema.bounded(cfg):
        values[path] = ([within(item, path, kind, limits) for item in value] if isinstance(value, ListConfig)
                        else within(value, path, kind, limits))
    return values


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
    try:  # by trying: permissions say nothing of /proc, a read-only mount, or what root may do
        handle, probe = tempfile.mkstemp(dir=existing, prefix=".audiation-probe-")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise AudiationError(f"{name}={path} is not writable ({existing}: {error.strerror})") from None
    return folder


OUTPUTS = "outputs"  # every entry point's default job and sweep folders are inside it (conf/*.yaml)


def check_output_overrides(argv: list[str]) -> None:
    """The job folders given on the command line (`hydra.run.dir=`, `hydra.sweep.dir=`), checked before
    Hydra makes them: Hydra's own failure is a traceback, or an empty value writes into the current folder.
    And text outside ASCII, which Hydra's grammar reads only inside quotes: one line showing how."""
    given = set()
    for argument in argv:
        key, sep, value = argument.lstrip("+").partition("=")
        if sep and key in ("hydra.run.dir", "hydra.sweep.dir"):
            given.add(key)
            # `<folder>/${now:%H}`: what comes before the first interpolation is a folder as it is
            writable_folder(value if "${" not in value else value.split("${")[0].rpartition("/")[0] or ".", key)
        if sep and not argument.isascii():  # every argument: Hydra's own refusal is a lexer's trace
            _quoted_outside_ascii(argument, key, value)
    used = "hydra.sweep.dir" if {"-m", "--multirun"} & set(argv) else "hydra.run.dir"
    if used not in given:  # Hydra makes its default folder inside `outputs/` first
        try:
            writable_folder(OUTPUTS, used)
        except AudiationError as error:
            raise AudiationError(f"{error} (the default: jobs go inside {OUTPUTS}/ of the current folder; give "
                                 f"{used}= another folder)") from None


def _quoted_outside_ascii(argument: str, key: str, value: str) -> None:
    """Refuse an override that Hydra's grammar cannot read, showing it quoted."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        OverridesParser.create().parse_overrides([argument])
    except OverrideParseException:
        words = [w.strip() for w in value.strip("[]").split(",")]
        quoted = ",".join(f'"{w}"' for w in words)
        written = f"{key}=[{quoted}]" if value.startswith("[") or len(words) > 1 else f'{key}="{value}"'
        raise AudiationError(f"{argument}: Hydra reads letters outside ASCII only inside quotes; write "
                             f"'{written}'") from None


def threads(checked) -> int | None:
    """`threads` as `declared` checked it: None (torch's default) for auto."""
    return None if checked == "auto" else int(checked)


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
    included), repeated units, a step of 0 and no units at all are errors. A number has at most 18 digits
    (Python refuses to read one of over 4,300)."""
    valid = f"valid: 0..{count - 1}"
    if isinstance(spec, str) and spec.strip() == "all":
        return list(range(count))
    if isinstance(spec, str) and re.fullmatch(r"\s*\d{0,18}\s*:\s*\d{0,18}\s*(:\s*\d{1,18}\s*)?", spec):
        start, stop, *step = (int(p) if p.strip() else None for p in spec.split(":"))
        if step == [0]:
            raise AudiationError(f"{name}={shown(spec)} has a step of 0: use 1 or more")
        if (stop or 0) > count or (start or 0) >= count:
            raise AudiationError(f"{name}={shown(spec)} runs past the last unit of {where} ({valid})")
        units = list(range(count))[slice(start, stop, *step)]
        if not units:
            raise AudiationError(f"{name}={shown(spec)} selects no units of {where} ({valid})")
        return units
    values = [spec] if spec is None or isinstance(spec, (str, int, float)) else list(spec)
    units = []
    for value in values:
        text = str(value).strip()
        if not re.fullmatch(r"-?\d{1,18}", text):
            raise AudiationError(f"{name}={shown(value)} is not a unit index ({valid})")
        unit = int(text)
        if not 0 <= unit < count:
            raise AudiationError(f"{name}={unit} is out of range for {where} ({valid})")
        if unit in units:
            raise AudiationError(f"{name} names unit {unit} twice: each target once")
        units.append(unit)
    if not units:
        raise AudiationError(f"{name}={shown(spec)} selects no units of {where} ({valid})")
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


def parse_texts(spec, tokens: list[str] | None, where: str, encode=None) -> list[tuple[str, list[int]]]:
    """`objective.text`: a word or a list of them, each as (text, token ids) in the model's CTC vocabulary
    (spaces are its word separator `|`), or as `encode` (a decoder's tokenizer) gives them."""
    if tokens is None and encode is None:
        raise AudiationError(f"objective=text needs a CTC model with a vocabulary; {where} has none")
    texts = [spec] if isinstance(spec, str) else list(spec) if spec is not None else []
    if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise AudiationError("objective.text must be a word or a list of words")
    index = {token: i for i, token in enumerate(tokens or []) if token}
    letters_of = [t for t in index if len(t) == 1 and t.isalpha()]
    # A one-case vocabulary (wav2vec2-base-960h's is upper case, tiny's lower): "Moon" means its letters.
    fold = (str.upper if all(t.isupper() for t in letters_of) else str.lower if all(t.islower() for t in letters_of)
            else str)
    parsed = []
    for text in texts:
        text = " ".join(text.split())
        if encode is not None:
            parsed.append((text, encode(text)))
            continue
        letters = ["|" if c == " " else fold(c) for c in text]
        unknown = sorted({c for c in letters if c not in index})
        if unknown:
            known = "".join(t for t in index if len(t) == 1 and t != "|")
            raise AudiationError(f"objective.text={text}: {', '.join(map(repr, unknown))} not in the vocabulary of "
                                 f"{where} (it has: {known})")
        parsed.append((text, [index[c] for c in letters]))
    from audiation.core.objectives import Target  # here: the command lines import this module before torch

    names = [Target("text", Layer("logits"), 0, TargetKind.text, text=t).name for t, _ in parsed]
    if len(set(names)) < len(names):
        raise AudiationError("objective.text names a text twice (or two that make the same target name): "
                             "each target once")
    return parsed


def frames_needed(ids: list[int]) -> int:
    """CTC needs a frame per character, and a blank between two equal ones."""
    return len(ids) + sum(a == b for a, b in zip(ids, ids[1:]))


def known_keys(cfg: DictConfig) -> None:
    """Refuse keys no schema declares: Hydra checks the others' names and types as it composes, but lets
    `+key=value` append anything (audiation/config/config_schema.py)."""
    unknown = config_schema.unknown_keys(cfg)
    if unknown:
        more = f" (nor are {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise AudiationError(f"{unknown[0]} is not a key of this config{more}: check its spelling against conf/ "
                             "(or --help)")


def check_logger(logger_cfg) -> None:
    if logger_cfg is not None and logger_cfg.get("enabled", False) and logger_cfg.mode not in LOGGER_MODES:
        raise AudiationError(f"logger.mode={logger_cfg.mode} is not one of {', '.join(LOGGER_MODES)}")


def check_memory(samples: int, config, batch: int, device: str, seconds: float, window: str = "cut") -> None:
    """Refuse, before allocating, a signal whose forward+backward cannot fit in this machine's memory (each
    family's estimate: `Family.step_bytes`)."""
    from audiation.models.families import family_of

    need = family_of(config).step_bytes(config, samples, batch, window)
    if device.startswith("cuda"):
        import torch  # here: the command lines import this module, and a Tab's completion should not wait on torch

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
