"""Quality measures of finished audiations, against the same model, layer and unit.

- `activation_ratio`, `activation_ratio_p99`: the final activation over the unit's maximum (and 99th
  percentile) on a dataset of natural speech: above 1 means the audiation drives the unit further
  than any natural input did. Needs dataset statistics (`quality.data=`).
- `selectivity` (a unit at a frame): its activation over the mean |activation| of the other units at that
  frame, read from the layer (whatever terms the objective has).
- `silence_ratio_db` (a unit at a frame): mean power of the signal away from the target frame relative to
  near it, in dB (lower is quieter elsewhere).
- `robust_activation`: the target activation under fresh augmentations never used in optimisation,
  averaged over `draws` draws: what survives small shifts and noise.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from audiation.core.kinds import TargetKind
from audiation.core.objectives import Geometry, sibling_mean, spectral_profile
from audiation.core.randomness import Streams
from audiation.core.render import Batch
from audiation.hearing.verdicts import character_error_rate  # the one edit distance
from audiation.models.encoder import Encoder, Ensemble, Layer

log = logging.getLogger(__name__)

FRESH_STREAM = 1_000_003  # offsets the seed so robustness draws never repeat the optimisation's draws


@dataclass(frozen=True)
class QualitySettings:
    draws: int = 4  # fresh augmentation draws for robust_activation (0: not measured)
    seed: int = 0
    unit_stats: dict[str, np.ndarray] | None = None  # per-unit "max" and "p99" over natural audio
    listener: Encoder | None = None  # a second CTC model with the same vocabulary: does anyone else hear it?


@torch.no_grad()
def unit_traces(encoder: Encoder, layer: Layer, signal: np.ndarray, units: list[int], device) -> np.ndarray:
    """(rows, frames): each row's target unit at every frame of its clean signal, for the page's trace."""
    acts = encoder(torch.from_numpy(signal).to(device), layer).float()
    rows = torch.arange(len(units), device=acts.device)
    return acts[rows, :, torch.tensor(units, device=acts.device)].cpu().numpy()


@torch.no_grad()
def selectivity(encoder: Encoder, layer: Layer, signal: torch.Tensor, units: list[int], frame: int) -> np.ndarray:
    """Per row: its unit's activation at `frame` over the mean |activation| of the layer's other units there."""
    at_frame = encoder(signal, layer).float()[:, frame, :]
    rows, columns = torch.arange(len(units), device=at_frame.device), torch.tensor(units, device=at_frame.device)
    target = at_frame[rows, columns]
    others = (at_frame.abs().sum(dim=1) - target.abs()) / (at_frame.shape[1] - 1)
    return (target / others.clamp(min=1e-9)).cpu().numpy()


def silence_ratio_db(signal: np.ndarray, geometry: Geometry, frame: int) -> np.ndarray:
    """Per row: 10 log10(mean power outside the frame's samples / mean power inside them)."""
    start, stop = geometry.frame_samples(frame)
    inside = np.zeros(signal.shape[1], dtype=bool)
    inside[start:stop] = True
    power = signal.astype(np.float64) ** 2
    return 10 * np.log10((power[:, ~inside].mean(axis=1) + 1e-20) / (power[:, inside].mean(axis=1) + 1e-20))


@torch.no_grad()
def robust_activation(encoder: Encoder, layer: Layer, batch: Batch, signal: torch.Tensor, seed: int,
                      draws: int) -> np.ndarray:
    streams = Streams(seed + FRESH_STREAM, [t.key for t in batch.targets], signal.device)
    total = torch.zeros(len(batch.targets), device=signal.device)
    for _ in range(draws):
        _, terms = batch.objective(encoder(batch.augment(signal, streams), layer).float(), signal)
        total += terms["activation"]
    return (total / draws).cpu().numpy()


def measure(encoder: Encoder, layer: Layer, batch: Batch, signal: np.ndarray, final_terms: dict[str, np.ndarray],
            geometry: Geometry, frame: int | None, settings: QualitySettings) -> list[dict[str, float]]:
    """One dict of quality numbers per target (row of `signal`)."""
    final, kind = final_terms["activation"], batch.targets[0].kind
    units = [t.unit for t in batch.targets]
    wave = torch.from_numpy(signal).to(batch.streams.device)
    columns: dict[str, np.ndarray] = {}
    if settings.draws > 0:
        columns["robust_activation"] = robust_activation(encoder, layer, batch, wave, settings.seed, settings.draws)
    if kind is TargetKind.unit:
        columns["selectivity"] = selectivity(encoder, layer, wave, units, frame)
        columns["silence_ratio_db"] = silence_ratio_db(signal, geometry, frame)
    texts = [t.text for t in batch.targets]
    # Who hears it: the model itself (an ensemble's first member), the ensemble that was optimised, a listener.
    judges = [("", encoder.members[0] if isinstance(encoder, Ensemble) else encoder),
              ("ensemble_", encoder if isinstance(encoder, Ensemble) else None), ("listener_", settings.listener)]
    if kind is TargetKind.text:  # what each judge hears in the audiations of texts
        for prefix, model in judges:
            if model is not None:
                heard = model.transcribe(wave)
                columns[f"{prefix}transcript"] = np.array(heard, dtype=object)
                columns[f"{prefix}cer"] = np.array([character_error_rate(t, h) for t, h in zip(texts, heard)])
    elif layer.kind == "logits" and kind.of_units:  # a letter: in how many frames heard
        letters = torch.tensor(units, device=wave.device)[:, None]
        for prefix, model in judges:
            if model is not None:
                heard = model(wave, layer).argmax(dim=-1)
                columns[f"{prefix}heard_share"] = (heard == letters).float().mean(dim=1).cpu().numpy()
                # CTC models are peaky (blank most of the time even on speech): of the frames heard as a
                # letter at all, the share that are this letter
                spoken = ~torch.isin(heard, torch.tensor(not_letters(model), device=heard.device))
                share = ((heard == letters) & spoken).sum(1) / spoken.sum(1).clamp(min=1)
                columns[f"{prefix}heard_share_of_letters"] = torch.where(
                    spoken.any(1), share, torch.nan).float().cpu().numpy()
                columns[f"{prefix}transcript"] = np.array(model.decode(heard), dtype=object)
    if batch.targets[0].sample is not None:
        columns["sibling_similarity"] = sibling_similarity(signal, [t.group for t in batch.targets])
    if settings.unit_stats is not None and kind.of_units:
        for name, statistic in (("activation_ratio", "max"), ("activation_ratio_p99", "p99")):
            reference = settings.unit_stats[statistic][units]
            # A ratio to a non-positive reference has no meaning: such units never fire on the data.
            columns[name] = np.where(reference > 0, final / np.where(reference > 0, reference, 1), np.nan)
    def plain(name, value):  # JSON has no NaN: a measure without meaning is null
        return value if name.endswith("transcript") else float(value) if np.isfinite(value) else None

    return [{name: plain(name, values[row]) for name, values in columns.items()} for row in range(len(batch.targets))]


def not_letters(model: Encoder) -> list[int]:
    """Token ids of a CTC vocabulary that are not letters: the blank (pad), the word gap, specials."""
    return [model.config.pad_token_id] + [i for i, token in enumerate(model.vocabulary)
                                           if token in ("|", "<unk>", "<s>", "</s>", "<pad>")]


def sibling_similarity(signal: np.ndarray, groups: list[str]) -> np.ndarray:
    """Per row: the mean cosine similarity of its spectral profile (`objectives.spectral_profile`: dB over 64
    bands, floored 40 dB below the loudest, mean removed) to those of the other samples of its target:
    1 = the same spectral shape, 0 = unrelated. What `diversity` pushes down."""
    ids = {group: i for i, group in enumerate(dict.fromkeys(groups))}
    profile = spectral_profile(torch.from_numpy(np.ascontiguousarray(signal, dtype=np.float32)))
    return sibling_mean(profile @ profile.T, torch.tensor([ids[g] for g in groups])).numpy().astype(np.float64)


UNDERSTOOD_CER = 0.5  # above this, names measured on the data describe the model's confusion, not speech


def data_error_rate(encoder: Encoder, files: list, limit: int = 32) -> dict | None:
    """How well the model hears the transcribed files of a dataset it is named on: the mean character error
    rate of its own transcripts (greedy CTC or Whisper) over up to `limit` files with a transcript, and how
    many. None when it cannot transcribe or no file has a transcript. Warns above `UNDERSTOOD_CER`."""
    from audiation.data import audio_files

    if getattr(encoder, "tokens", None) is None and (getattr(encoder, "head", None) is None
                                                     or getattr(encoder, "vocabulary", None) is None):
        return None
    pairs = [(f, audio_files.transcript(f)) for f in files]
    pairs = [(f, text) for f, text in pairs if text][:limit]
    if not pairs:
        return None
    device = next(encoder.parameters()).device
    rates = []
    for path, text in pairs:
        try:
            signal = audio_files.read_audio(path, encoder.sample_rate)
        except audio_files.UnreadableAudio:
            continue
        if len(signal) > 30 * encoder.sample_rate:  # past Whisper's window; a CTC model's memory
            continue
        heard = encoder.transcribe(torch.from_numpy(signal)[None].to(device))[0]
        rates.append(character_error_rate(text, heard))
    if not rates:
        return None
    result = {"cer": round(float(np.mean(rates)), 4), "files": len(rates)}
    _warn_if_not_understood(encoder.name, result)
    return result


def cached_data_error_rate(folder, encoder_factory, files: list) -> dict | None:
    """`data_error_rate`, kept in `folder` (an activation cache's: the same model and files), so a job that
    reuses the cache neither loads the model nor transcribes again; the warning is said every time."""
    from audiation.outputs.disk import write_json

    path = Path(folder) / "model_cer.json"
    try:
        saved = json.loads(path.read_text())
        result, name = saved["model_cer"], saved["model"]
    except (OSError, ValueError, KeyError, TypeError):
        encoder = encoder_factory()
        result, name = data_error_rate(encoder, files), encoder.name
        write_json(path, {"model_cer": result, "model": name})
        return result
    _warn_if_not_understood(name, result)
    return result


def _warn_if_not_understood(name: str, result: dict | None) -> None:
    if isinstance(result, dict) and isinstance(result.get("cer"), (int, float)) and result["cer"] > UNDERSTOOD_CER:
        log.warning("warning: %s hears its transcribed data at CER %.2f (%d files): unit names measured on data "
                    "a model does not understand describe its confusion, not speech", name, result["cer"],
                    result.get("files", 0))

