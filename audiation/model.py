"""Model loading and layer access: the one place a speech encoder is opened, frozen and cut.

Any wav2vec2-family encoder that `transformers.AutoModel` loads works (wav2vec2, HuBERT, WavLM,
data2vec-audio): they share a conv feature encoder (`feature_extractor.conv_layers`) and a transformer
(`encoder.layers`). Layer sizes are always read from the model config, never assumed.

Layers are named as in `model.layer`:
- `0`            the transformer's input (conv features, projected, plus positional conv), = HF hidden_states[0]
- `1..L`         the output of transformer layer N, = HF hidden_states[N]
- `conv1..convK` the output of conv layer K of the feature encoder (after its norm and GELU)
- `mlp1..mlpL`   the feed-forward (MLP) neurons of transformer layer N: their pre-activations, the input of
                 the activation function (`intermediate_size` units; a privileged basis, unlike `1..L`).
                 Pre-activations, as Lucid audits `pre_relu`: GELU is lowest at x ~ -0.75 and rises to 0 as
                 x -> -inf, so maximising a neuron from below its minimum drove it to -inf, "gaining" only
                 up to 0; the pre-activation rises only on the neuron's positive side
- `logits`       the CTC head's outputs (one unit per vocabulary entry), only for `*ForCTC` checkpoints

Why ~450 lines in one module: loading (hub, cache, local folders checked before loading, random configs),
the layer names above and the cut forward all depend on the same few facts of a Hugging Face model's
layout; kept together, a new model family is one place to change.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from audiation.errors import AudiationError

log = logging.getLogger(__name__)

OFFLINE_HINT = (
    "use model=tiny (the project's trained model), model=random_base (random weights), "
    "or model.name=/path/to/a/save_pretrained/folder"
)


@dataclass(frozen=True)
class Layer:
    kind: str  # "transformer", "conv", "mlp" or "logits"
    index: int = 0

    @property
    def label(self) -> str:
        """Short tag used in target and run names: L8, conv3, mlp8, logits."""
        return {"transformer": f"L{self.index}", "conv": f"conv{self.index}", "mlp": f"mlp{self.index}",
                "logits": "logits"}[self.kind]


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

    @property
    def short_name(self) -> str:
        """The model's one display name: `tiny-w2v2-espeak`, `wav2vec2-base`, `random_base`, and for an
        ensemble its members joined by `+`."""
        return "+".join(Path(str(name).rstrip("/")).name or "model" for name in (self.name, *self.ensemble))

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
        fields = dict(self.__dict__)
        folder = Path(self.name).expanduser()
        if not self.random_init and folder.is_dir():
            fields["files"] = {p.name: [p.stat().st_size, p.stat().st_mtime_ns]
                               for p in sorted(folder.iterdir()) if p.is_file()}
        return fields


def parse_layer(spec, config) -> Layer:
    """Turn a `model.layer` value into a Layer, or say in one line which values are valid."""
    num_layers = config.num_hidden_layers
    num_convs = len(config.conv_dim)
    valid = (f"valid: 0..{num_layers}, conv1..conv{num_convs}, mlp1..mlp{num_layers}"
             + (", logits" if has_ctc_head(config) else ""))
    text = str(spec).strip().lower()
    if re.fullmatch(r"-?\d+", text):
        index = int(text)
        if 0 <= index <= num_layers:
            return Layer("transformer", index)
    elif match := re.fullmatch(r"conv(\d+)", text):
        index = int(match.group(1))
        if 1 <= index <= num_convs:
            return Layer("conv", index)
    elif match := re.fullmatch(r"mlp(\d+)", text):
        index = int(match.group(1))
        if 1 <= index <= num_layers:
            return Layer("mlp", index)
    elif text == "logits" and has_ctc_head(config):
        return Layer("logits")
    raise AudiationError(f"model.layer={spec} is not a layer of this model ({valid})")


def layer_index(layer: Layer, config) -> int:
    """A layer's depth as one number, to plot and sort runs by: conv layers below 0 (conv1 of wav2vec2-base's
    seven is -7), 0..L the transformer (mlpN with layer N), logits L + 1."""
    if layer.kind == "conv":
        return layer.index - len(config.conv_dim) - 1
    if layer.kind == "logits":
        return config.num_hidden_layers + 1
    return layer.index


def has_ctc_head(config) -> bool:
    return any(arch.endswith("ForCTC") for arch in (config.architectures or []))


def num_units(layer: Layer, config) -> int:
    if layer.kind == "conv":
        return config.conv_dim[layer.index - 1]
    if layer.kind == "mlp":
        return config.intermediate_size
    if layer.kind == "logits":
        return config.vocab_size
    return config.hidden_size


def frame_geometry(layer: Layer, config) -> tuple[int, int]:
    """(hop, receptive field) in input samples of one frame at this layer, from the conv stack.

    Transformer layers see the whole signal through attention; their frame grid is the last conv's.
    """
    depth = layer.index if layer.kind == "conv" else len(config.conv_dim)
    hop, field = 1, 1
    for kernel, stride in zip(config.conv_kernel[:depth], config.conv_stride[:depth]):
        field += (kernel - 1) * hop
        hop *= stride
    return hop, field


def num_frames(layer: Layer, config, num_samples: int) -> int:
    depth = layer.index if layer.kind == "conv" else len(config.conv_dim)
    length = num_samples
    for kernel, stride in zip(config.conv_kernel[:depth], config.conv_stride[:depth]):
        length = (length - kernel) // stride + 1
    if length < 1:
        raise AudiationError(f"{num_samples} samples are too short for one frame at layer {layer.label}")
    return length


class _StopForward(Exception):
    """Raised by a hook once the target layer has run, so no work is done above it."""


class Encoder(nn.Module):
    """A frozen speech encoder that returns one layer's activations, (batch, frames, units).

    The forward pass stops right after the requested layer (a hook raises once it has the output), and
    every hook is removed again whatever happens, so the model is left as it was found.
    """

    def __init__(self, model: nn.Module, normalize: bool, sample_rate: int, name: str):
        super().__init__()
        self.model = model.eval().requires_grad_(False)  # weight grads would cost 1.6x per step
        self.base = model.base_model
        self.head = getattr(model, "lm_head", None)
        self.normalize = normalize
        self.sample_rate = sample_rate
        self.name = name
        self.vocabulary: list[str] | None = None  # CTC tokens by id, set by the loader when there are any

    @property
    def config(self):
        return self.model.config

    @torch.no_grad()
    def transcribe(self, waveform: torch.Tensor) -> list[str]:
        """Greedy CTC decoding of each row (CTC checkpoints only): what the model itself hears."""
        if self.head is None or self.vocabulary is None:
            raise AudiationError(f"{self.name} has no CTC head and vocabulary to transcribe with")
        return self.decode(self(waveform, Layer("logits")).argmax(dim=-1))

    def decode(self, ids: torch.Tensor) -> list[str]:
        """Texts from per-frame token ids (rows, frames): repeats merged, blanks dropped."""
        blank = self.config.pad_token_id
        texts = []
        for row in ids.tolist():
            kept = [i for n, i in enumerate(row) if i != blank and (n == 0 or i != row[n - 1])]
            texts.append("".join(self.vocabulary[i] for i in kept).replace("|", " ").strip())
        return texts

    def preprocess(self, waveform: torch.Tensor) -> torch.Tensor:
        """What the model's feature extractor does to raw audio, differentiably and per row."""
        if not self.normalize:
            return waveform
        mean = waveform.mean(dim=-1, keepdim=True)
        var = waveform.var(dim=-1, keepdim=True, unbiased=False)
        return (waveform - mean) / torch.sqrt(var + 1e-7)

    def _hook_point(self, layer: Layer) -> tuple[nn.Module, bool]:
        """The module whose output (or, when the flag is True, whose input) is the layer's activation."""
        if layer.kind == "conv":
            return self.base.feature_extractor.conv_layers[layer.index - 1], False
        if layer.kind == "mlp":  # before the activation function (Lucid's pre_relu): see the module's docstring
            return self.base.encoder.layers[layer.index - 1].feed_forward.intermediate_dense, False
        layers = self.base.encoder.layers
        if layer.index < len(layers):
            return layers[layer.index], True
        return layers[-1], False  # pre-LN models' final LayerNorm is not part of any layer's output

    def forward(self, waveform: torch.Tensor, layer: Layer) -> torch.Tensor:
        inputs = self.preprocess(waveform)
        if layer.kind == "logits":
            return self.head(self.base(inputs).last_hidden_state)
        module, on_input = self._hook_point(layer)
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
            self.base(inputs)
        except _StopForward:
            pass
        finally:
            handle.remove()
        activations = captured[0]
        return activations.transpose(1, 2) if layer.kind == "conv" else activations


class Ensemble(nn.Module):
    """CTC encoders that share a vocabulary and a frame grid, heard as one model: the logits averaged over
    the members (a target that only one model hears is worth less than one they all hear). The first
    member is the model itself: its config, vocabulary and sample rate stand for the ensemble's."""

    def __init__(self, members: list[Encoder]):
        super().__init__()
        self.members = nn.ModuleList(members)
        first = members[0]
        self.head, self.vocabulary, self.sample_rate = first.head, first.vocabulary, first.sample_rate
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


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


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
    if not _hub_reachable():
        raise AudiationError(
            f"model.name={name} is not in the Hugging Face cache and the hub cannot be reached; {OFFLINE_HINT}"
        )
    return {"pretrained_model_name_or_path": name}


def load_config(spec: ModelSpec):
    """The model's config only (a small JSON file): enough to validate layers and units cheaply."""
    from transformers import AutoConfig

    if spec.random_init:
        try:
            return AutoConfig.for_model(spec.architecture, **spec.config)
        except (ValueError, TypeError) as error:
            raise AudiationError(f"model.config for {spec.architecture}: {error}".splitlines()[0]) from None
    try:
        config = AutoConfig.from_pretrained(**_pretrained_kwargs(spec.name))
    except AudiationError:
        raise
    except (OSError, ValueError) as error:
        raise AudiationError(f"model.name={spec.name} could not be opened: {error}".splitlines()[0]) from None
    if not (getattr(config, "conv_dim", None) and getattr(config, "num_hidden_layers", None)):
        raise AudiationError(f"model.name={spec.name} is a {config.model_type} model, not a wav2vec2-family speech "
                             "encoder (no conv feature encoder)")
    if _is_local(spec.name):
        _check_weights(Path(spec.name).expanduser())
    return config


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
        except Exception as error:  # noqa: BLE001 - safetensors raises its own error type for every damage
            raise AudiationError(f"model.name={folder}: {present[0].name} is damaged ({error})".splitlines()[0]) from None


def weights_digest(spec: ModelSpec) -> str | None:
    """A short sha256 of a local model folder's config and weight files, None for hub and random models:
    what a resumed job compares, so weights replaced in the same folder are another model."""
    folder = Path(spec.name).expanduser()
    if spec.random_init or not _is_local(spec.name) or not folder.is_dir():
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
    except (OSError, ValueError):
        return None
    by_id = {i: token for token, i in tokenizer.get_vocab().items()}
    return [by_id.get(i, "") for i in range(size)]


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
    for module in encoder.base.encoder.layers:
        module.forward = torch.compile(module.forward)


@functools.lru_cache(maxsize=4)  # a model, its ensemble members and a listener
def _load_cached(key: str, device: str, compile_layers: bool) -> Encoder:
    from transformers import AutoModel, AutoModelForCTC
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()  # a quiet console: no weight-loading bars or notices
    transformers_logging.disable_progress_bar()
    spec = ModelSpec(**json.loads(key))
    log.info("loading model %s on %s", spec.short_name, device)
    config = load_config(spec)
    if spec.random_init:
        with torch.random.fork_rng():
            torch.manual_seed(spec.init_seed)
            model = AutoModel.from_config(config)
    else:
        loader = AutoModelForCTC if has_ctc_head(config) else AutoModel
        model = loader.from_pretrained(**_pretrained_kwargs(spec.name))
    encoder = Encoder(model, _normalizes_input(spec), spec.sample_rate, spec.short_name).to(device)
    if encoder.head is not None:
        encoder.vocabulary = vocabulary(spec, config.vocab_size)
    if compile_layers:
        _compile_layers(encoder)
    return encoder


def load_encoder(spec: ModelSpec, device: str | torch.device, compile_layers: bool = False) -> Encoder | Ensemble:
    """Open the encoder once per process and spec: multirun jobs in one process share it."""
    if spec.ensemble:
        return Ensemble([load_encoder(member, device, compile_layers) for member in spec.members()])
    return _load_cached(spec.key(), str(device), bool(compile_layers))
