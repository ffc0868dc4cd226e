"""Sparse autoencoders on one layer's activations: features, not only neurons (config-free core).

A TopK SAE (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"): for an activation vector x,

    pre(x)  = (x - b_dec) @ W_enc.T + b_enc       a feature's pre-activation: linear in x
    code(x) = ReLU(TopK(pre(x)))                   at most k features on
    x_hat   = code(x) @ W_dec + b_dec              W_dec's rows have unit norm

`b_dec` starts at the data's mean and `W_enc` at `W_dec`'s transpose. Dead features (none fired for
`dead_after` frames) are revived by the auxiliary loss: the top `aux_k` dead pre-activations reconstruct
what the live ones left out (weight `aux_weight`).

What is audiated is `pre(x)[feature]` (`SAE.pre`, `FeatureView`): a linear function of the layer, so its
gradient never vanishes the way the TopK code's does when the feature is off.

Training reads the activation cache (`activations.ActivationCache`, float16, memory-mapped) in shuffled
chunks of frames, so data larger than memory works; frames of held-out *files* measure the fraction of
variance explained.

Why ~360 lines in one module: the SAE, its training and its saved pair (weights named by the summary that
measures them) change together; a change to one's fields is a change to the others' checks.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from audiation.models.encoder import ModelSpec, weights_digest
from audiation.outputs.record_schema import is_number, is_whole

WEIGHTS = "sae.safetensors"
SUMMARY = "features.json"


class SAE(nn.Module):
    def __init__(self, units: int, features: int, k: int, generator: torch.Generator | None = None):
        super().__init__()
        self.k = k
        decoder = torch.randn(features, units, generator=generator)
        decoder /= decoder.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(decoder)
        self.W_enc = nn.Parameter(decoder.clone())  # (features, units): pre = (x - b_dec) @ W_enc.T + b_enc
        self.b_enc = nn.Parameter(torch.zeros(features))
        self.b_dec = nn.Parameter(torch.zeros(units))

    @property
    def features(self) -> int:
        return self.W_enc.shape[0]

    def pre(self, x: torch.Tensor) -> torch.Tensor:
        """Every feature's pre-activation (before TopK): (..., units) -> (..., features)."""
        return (x - self.b_dec) @ self.W_enc.T + self.b_enc

    def code(self, pre: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """ReLU of the k largest pre-activations, zeros elsewhere."""
        values, indices = pre.topk(k or self.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, indices, values.relu())

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return code @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pre = self.pre(x)
        code = self.code(pre)
        return self.decode(code), code, pre

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp(min=1e-12))

    def save(self, folder: Path, summary: dict) -> None:
        """`sae.safetensors` then `features.json`, which names the weights by content: a pair, complete or
        not at all. The old summary goes first, so a run cut off between the two leaves no summary of
        other weights."""
        from safetensors.torch import save_file

        from audiation.outputs.disk import atomic, write_json

        folder.mkdir(parents=True, exist_ok=True)
        (folder / SUMMARY).unlink(missing_ok=True)
        with atomic(folder / WEIGHTS) as temporary:
            save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, str(temporary),
                      metadata={"k": str(self.k)})
        write_json(folder / SUMMARY, {**summary, "weights_sha256": content_digest(folder)})


def load(folder: Path, device: str = "cpu") -> SAE:
    """The SAE saved in `folder` (checked with `read_summary` first)."""
    from safetensors.torch import load_file

    weights = load_file(str(Path(folder) / WEIGHTS), device=device)
    features, units = weights["W_enc"].shape
    sae = SAE(units, features, int(read_summary(folder)["k"]))
    sae.load_state_dict(weights)
    return sae.to(device).requires_grad_(False)


def written_here(folder: Path) -> bool:
    """Whether `folder` holds an SAE of ours, whole or cut off while it was saved: a summary naming its weights
    by content, or weights carrying the `k` our `save` writes into their metadata."""
    folder = Path(folder)
    try:
        summary = json.loads((folder / SUMMARY).read_text())
        if isinstance(summary, dict) and isinstance(summary.get("weights_sha256"), str):
            return True
    except (OSError, ValueError):
        pass
    try:
        with open(folder / WEIGHTS, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(min(size, 1 << 20)))
        return isinstance(header, dict) and "k" in (header.get("__metadata__") or {})
    except (OSError, ValueError, TypeError):
        return False


def read_summary(folder: Path) -> dict:
    """`features.json`, and a check that `sae.safetensors` is whole (its header and size), reading no
    weights. Raises ValueError saying what is wrong."""
    folder = Path(folder)
    try:
        summary = json.loads((folder / SUMMARY).read_text())
    except FileNotFoundError:
        raise ValueError(f"{folder} has no {SUMMARY}: not an SAE folder (python -m audiation.features makes one)") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"{folder / SUMMARY} could not be read: {error}") from None
    misfit = _summary_misfit(summary)
    if misfit:
        raise ValueError(f"{folder / SUMMARY} is not an SAE's summary ({misfit}); train it again")
    path = folder / WEIGHTS
    try:
        with open(path, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(size))
        if not isinstance(header, dict):
            raise ValueError("its header is not a table")
        end = max(int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__")
        if path.stat().st_size < 8 + size + end:
            raise ValueError("it is truncated")
        shapes = {key: header[key]["shape"] for key in ("W_enc", "W_dec", "b_enc", "b_dec")}
    except FileNotFoundError:
        raise ValueError(f"{folder} has no {WEIGHTS}") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is damaged ({error or type(error).__name__})") from None
    features, units = summary["features"], summary["units"]
    expected = {"W_enc": [features, units], "W_dec": [features, units], "b_enc": [features], "b_dec": [units]}
    if shapes != expected:
        raise ValueError(f"{folder / SUMMARY} does not describe {path} (its shapes {shapes}; the summary's "
                         f"{features} features x {units} units)")
    if summary["weights_sha256"] != content_digest(folder):  # new weights beside an old summary
        raise ValueError(f"{folder / SUMMARY} describes other weights than {path} (its training was cut off "
                         "between the two?); train it again")
    return summary


def _summary_misfit(summary) -> str | None:
    """What in `features.json` is missing or not of its kind (None when it fits): every number an
    objective=feature run reads from it, one per feature where it is per feature."""
    if not isinstance(summary, dict):
        return "not a JSON object"
    features, units, k = summary.get("features"), summary.get("units"), summary.get("k")
    if not (is_whole(features) and features >= 1 and is_whole(units) and units >= 1):
        return "features and units must be whole numbers >= 1"
    if not (is_whole(k) and 1 <= k <= features):
        return f"k must be a whole number in 1..{features}"
    if not isinstance(summary.get("layer"), str) or not isinstance(summary.get("model"), dict):
        return "it names no model and layer"
    if not isinstance(summary.get("weights_sha256"), str):
        return "it does not name its weights"
    frequency, nearest = summary.get("firing_frequency"), summary.get("nearest_features")
    if not (isinstance(frequency, list) and len(frequency) == features
            and all(map(is_number, frequency))):
        return f"firing_frequency must hold {features} numbers"
    pair = lambda p: isinstance(p, list) and len(p) == 2 and is_whole(p[0]) and 0 <= p[0] < features  # noqa: E731
    if not (isinstance(nearest, list) and len(nearest) == features
            and all(isinstance(row, list) and all(pair(p) and is_number(p[1]) for p in row) for row in nearest)):
        return f"nearest_features must hold {features} lists of (feature, cosine)"
    return None


def identity(spec: ModelSpec) -> dict:
    """What must match between an SAE and a run that audiates its features (with the layer): the model by
    name, and by its weights' content (a local folder) or its random config."""
    return {"name": spec.short_name, "weights_sha256": weights_digest(spec),
            "random_init": spec.random_init, "config": spec.config if spec.random_init else {}}


def content_digest(folder: Path) -> str:
    """A short sha256 of `sae.safetensors`: an SAE retrained into the same folder is another objective."""
    import hashlib

    digest = hashlib.sha256()
    with open(Path(folder) / WEIGHTS, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()[:16]


class FeatureView(nn.Module):
    """An encoder seen through an SAE: `view(wave, layer)` is every feature's pre-activation at every frame
    of that layer, so the unit and channel objectives, the quality measures and the traces work on
    features unchanged."""

    def __init__(self, encoder: nn.Module, sae: SAE):
        super().__init__()
        self.encoder, self.sae = encoder, sae
        self.vocabulary = None  # features are not CTC outputs

    def forward(self, wave: torch.Tensor, layer) -> torch.Tensor:
        acts = self.encoder(wave, layer)
        return self.sae.pre(acts.to(self.sae.W_enc.dtype))


# --- training -------------------------------------------------------------------------------------------


@dataclass
class TrainSettings:
    features: int
    k: int
    steps: int = 3000
    batch: int = 2048
    lr: float = 4e-4
    aux_k: int = 64
    aux_weight: float = 1 / 32
    dead_after: int = 200_000  # frames without firing after which a feature counts as dead
    chunk_frames: int = 1 << 16  # frames read from the memory map at a time (float32 in memory: chunk x units x 4)
    seed: int = 0


def frame_ranges(pieces, files: set[str]) -> np.ndarray:
    """The frames (indices into the cache) of the pieces whose file is in `files`."""
    parts = [np.arange(p.first_frame, p.first_frame + p.num_frames) for p in pieces if p.file in files]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _chunks(frames: np.ndarray, chunk: int, rng: np.random.Generator):
    """Shuffled chunks of `frames` (sorted within each chunk, for reading the memory map in order)."""
    order = rng.permutation(len(frames))
    for start in range(0, len(frames), chunk):
        yield np.sort(frames[order[start:start + chunk]])


def train(activations: np.ndarray, train_frames: np.ndarray, held_out_frames: np.ndarray, settings: TrainSettings,
          device: str = "cpu", label: str = "sae") -> tuple[SAE, dict]:
    """Train a TopK SAE on `activations[train_frames]` (a memory map: read a chunk at a time) and measure it
    on `held_out_frames`. Returns (the SAE, its numbers: fraction of variance explained, mean L0, dead share,
    each feature's firing frequency on the held-out frames)."""
    if len(train_frames) < settings.batch:
        raise ValueError(f"{len(train_frames)} training frames: fewer than one batch of {settings.batch}")
    rng = np.random.default_rng(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    units = activations.shape[1]
    sae = SAE(units, settings.features, settings.k, generator)
    mean = np.zeros(units)
    for chunk in _chunks(train_frames, settings.chunk_frames, rng):  # b_dec starts at the data's mean
        mean += np.asarray(activations[chunk], dtype=np.float64).sum(axis=0)
    mean /= max(len(train_frames), 1)
    variance = 0.0
    for chunk in _chunks(train_frames, settings.chunk_frames, rng):  # to scale the loss: 1 = predicting the mean
        variance += float(((np.asarray(activations[chunk], dtype=np.float64) - mean) ** 2).sum())
    variance /= max(len(train_frames), 1)
    with torch.no_grad():
        sae.b_dec.copy_(torch.from_numpy(mean).float())
    sae.to(device)
    optimiser = torch.optim.Adam(sae.parameters(), lr=settings.lr)
    since_fired = torch.zeros(settings.features, device=device)
    step, history = 0, []
    bar = tqdm(total=settings.steps, desc=label, unit="step", dynamic_ncols=True, leave=False)
    while step < settings.steps:  # chunks of at least one batch: no batch is taken from a smaller one, ever
        for chunk in _chunks(train_frames, max(settings.chunk_frames, settings.batch), rng):
            data = torch.from_numpy(np.asarray(activations[chunk], dtype=np.float32))
            data = data[torch.randperm(len(data), generator=generator)].to(device)
            for start in range(0, len(data) - settings.batch + 1, settings.batch):
                loss, since_fired = batch_loss(sae, data[start:start + settings.batch], variance, since_fired,
                                               settings)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                sae.normalise_decoder()
                step += 1
                if step % 50 == 0:
                    history.append(loss.item())
                    bar.set_postfix(loss=f"{history[-1]:.4f}")
                bar.update()
                if step >= settings.steps:
                    break
            if step >= settings.steps:
                break
    bar.close()
    sae.requires_grad_(False)
    numbers = evaluate(sae, activations, held_out_frames, settings.chunk_frames, device)
    numbers["loss_every_50_steps"] = [round(v, 5) for v in history]
    return sae.cpu(), numbers


def batch_loss(sae: SAE, x: torch.Tensor, variance: float, since_fired: torch.Tensor,
               settings: TrainSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch's loss: the mean squared reconstruction error as a share of `variance`, plus, where some
    features have not fired for `dead_after` frames, `aux_weight` times the share of that error the dead
    features' top `aux_k` pre-activations leave. Returns it with each feature's frames since it last fired."""
    x_hat, code, pre = sae(x)
    error = x - x_hat
    loss = error.pow(2).sum(dim=1).mean() / variance
    fired = (code > 0).any(dim=0)
    since_fired = torch.where(fired, torch.zeros_like(since_fired), since_fired + len(x))
    dead = since_fired >= settings.dead_after
    if dead.any():  # the dead features' top pre-activations explain what the live ones missed
        masked = torch.where(dead, pre, torch.full_like(pre, -torch.inf))
        aux_code = sae.code(masked, min(settings.aux_k, int(dead.sum())))
        aux = (error.detach() - aux_code @ sae.W_dec).pow(2).sum(dim=1).mean() / variance
        loss = loss + settings.aux_weight * torch.nan_to_num(aux)
    return loss, since_fired


@torch.no_grad()
def evaluate(sae: SAE, activations: np.ndarray, frames: np.ndarray, chunk: int = 1 << 16,
             device: str = "cpu") -> dict:
    """On `frames`: fraction of variance explained (1 - squared error / squared distance to their mean),
    mean L0, each feature's firing frequency, and the share of features that never fire."""
    sae = sae.to(device)
    total = np.zeros(activations.shape[1])
    for part in range(0, len(frames), chunk):
        total += np.asarray(activations[np.sort(frames[part:part + chunk])], dtype=np.float64).sum(axis=0)
    mean = torch.from_numpy(total / max(len(frames), 1)).float().to(device)
    error = spread = l0 = 0.0
    fires = torch.zeros(sae.features, device=device)
    for part in range(0, len(frames), chunk):
        x = torch.from_numpy(np.asarray(activations[np.sort(frames[part:part + chunk])], dtype=np.float32)).to(device)
        for start in range(0, len(x), 8192):
            rows = x[start:start + 8192]
            x_hat, code, _ = sae(rows)
            error += float((rows - x_hat).pow(2).sum())
            spread += float((rows - mean).pow(2).sum())
            on = code > 0
            l0 += float(on.sum())
            fires += on.sum(dim=0)
    count = max(len(frames), 1)
    frequency = (fires / count).cpu().numpy()
    return {"held_out_frames": int(len(frames)),
            "variance_explained": 1 - error / spread if spread > 0 else math.nan,
            "mean_l0": l0 / count, "dead_share": float((frequency == 0).mean()),
            "firing_frequency": [float(f"{f:.4g}") for f in frequency]}


@torch.no_grad()
def nearest_by_decoder(sae: SAE, how_many: int = 3) -> list[list[tuple[int, float]]]:
    """Per feature, its `how_many` nearest features by the cosine of their decoder rows (unit norm): fewer
    when there are no more other features."""
    similarity = sae.W_dec @ sae.W_dec.T
    similarity.fill_diagonal_(-2)
    values, indices = similarity.topk(min(how_many, sae.features - 1), dim=1)
    return [[(int(i), round(float(v), 3)) for i, v in zip(row_i, row_v)] for row_i, row_v in zip(indices, values)]
