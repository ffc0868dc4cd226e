"""The unit browser: one static `index.html` for a run, a sweep, an examples job, or several of them
(`python -m audiation.gallery <folder> [<folder> ...]`; written at the end of every multirun).

One card per target (per unit for an `audiation.examples` job): the audiation (player, spectrogram with
the target frame, waveform), the unit's activation over time on it, its top natural examples (player,
spectrogram, the unit's activation over the clip with the peak marked, transcript) when the run had
`quality.data`, the character a CTC output stands for, and the numbers (activation before and after,
ratio to the natural maximum, selectivity, transcript and CER, any other numeric field). Its core (name, phone
name, player, spectrogram, activation before -> after) shows at once, the rest on demand. The header links
the sweep's report (`audiation/jobs/sweep_report.py`) where there is one.

The page holds its cards as one JSON block and draws one page of them at a time, so a 9,216-unit sweep
stays fast: sort by layer (conv1 < L2 < L10 < logits), unit, final activation, gain or any numeric field;
filter by text (names, layers, objectives, models, overrides, transcripts); page through. Several folders
are compared side by side: cards with the same target name stand in one row, one per folder.

Media are linked by paths relative to the page (it opens from disk and survives moving the folder with
it); `embed=True` (`--embed`) puts them inside the page instead, for a small run to send as one file.
Files are found relative to each job folder, never by the absolute paths of the run.

Why ~350 lines in one module: the cards, the links to their media and the escaping of every value share
one rule for what may reach the page; split, that rule would live in two places.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import os
import re
from pathlib import Path
from urllib.parse import quote

from omegaconf import OmegaConf

from audiation.errors import AudiationError
from audiation.hearing.verdicts import VERDICTS
from audiation.outputs import record_schema
from audiation.outputs.disk import atomic
from audiation.outputs.record_schema import is_number
from audiation.outputs.results import (
    TARGET_FILES,
    inside,
    natural_key,
    read_examples_jobs,
    read_jobs,
    target_folder,
    within,
)

log = logging.getLogger(__name__)

# Record fields a card shows in its own way; every other numeric field is listed as it is.
_SHOWN = {"unit", "initial_activation", "final_activation", "sample", "direction_index", "frame", "steps",
          "trace_hop_seconds", "trace_offset_seconds"}
PAGE_SIZE = 24

STATIC = Path(__file__).resolve().parent / "static"  # the page's style and scripts, shipped in the package


def _number(value) -> float | None:
    """A finite float for a number, else None (NaN is not JSON, and has no place in an order)."""
    return float(value) if is_number(value) and math.isfinite(value) else None


class _Media:
    """Turns a file into what the page's `src` needs: a path relative to the page, or a data URI."""

    def __init__(self, page_dir: Path, embed: bool):
        self.page_dir, self.embed = page_dir.resolve(), embed

    def link(self, path: Path, folder: Path) -> str | None:
        """A plain link (never embedded) to a file or folder inside `folder`, relative to the page."""
        if not within(folder, path) or not path.exists():
            return None
        return quote(Path(os.path.relpath(path.resolve(), self.page_dir)).as_posix())

    def __call__(self, path: Path, job: Path) -> str | None:
        """The page's link to `path`, a file of the job folder `job` (never one outside it: paths come from
        records, which any file on disk may hold)."""
        if inside(job, path) is None:
            return None
        if self.embed:
            mime = "audio/wav" if path.suffix == ".wav" else "image/png"
            return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"
        return quote(Path(os.path.relpath(path.resolve(), self.page_dir)).as_posix())  # "#", "?", "%" in names


# Hydra writes a swept value back with a backslash before each of its grammar's characters (`objective.unit=0\:64`);
# the page shows the value as typed.
_HYDRA_ESCAPED = re.compile(r"\\([\\()\[\]{}:=, \t])")


def _overrides(job: Path) -> list[str]:
    path = job / ".hydra" / "overrides.yaml"
    return [_HYDRA_ESCAPED.sub(r"\1", str(o)) for o in OmegaConf.load(path)] if path.is_file() else []


def _examples(job: Path, examples, media: _Media) -> list[dict]:
    examples = [e for e in examples if isinstance(e, dict)] if isinstance(examples, list) else []
    return [{"rank": e.get("rank"), "activation": _number(e.get("activation")), "text": e.get("text"),
             "where": f"{Path(str(e.get('file'))).name} {_number(e.get('time_seconds')) or 0:.2f} s",
             "clip": media(job / str(e.get("clip")), job), "spectrogram": media(job / str(e.get("spectrogram")), job),
             "trace": e.get("trace"), "trace_seconds": e.get("trace_seconds")} for e in examples]


def _links(job: Path, media: _Media) -> list[tuple[str, str]]:
    """(label, link) for a job's own files a reader may want beside its cards, where they exist (a sweep's report
    is linked once, in the page's header)."""
    runs = sorted((job / "wandb").glob("*run-*"))  # the job's W&B run folder(s): `wandb sync` uploads them
    files = (("job folder", job), ("loss curve", job / "loss_curve.png"), ("config", job / ".hydra" / "config.yaml"),
             ("metrics", job / "metrics.json"), ("report", job / "report.md"),
             *(("W&B run", run) for run in runs[-1:]))
    return [(label, link) for label, path in files if (link := media.link(path, job.parent))]


def phone_name(record: dict) -> str | None:
    """A unit's phone name for its card's title: "/S/ ×8.1" (phone and lift), None without one."""
    phone, lift = record.get("phone"), _number(record.get("phone_lift"))
    return None if not phone or lift is None else f"/{phone}/ ×{lift:.1f}"


def _phone_words(record: dict) -> str:
    """What the filter finds a unit by its phone name: `/s/` (as the title writes it) and `phone:s`."""
    phone = record.get("phone")
    return f"/{phone}/ phone:{phone}" if phone else ""


def _target_card(source: int, root: Path, job: Path, record: dict, extra: list[str], media: _Media) -> dict:
    name = str(record["name"])
    initial, final = _number(record.get("initial_activation")), _number(record.get("final_activation"))
    gain = None if initial is None or final is None else final - initial
    where = job.relative_to(root).as_posix()
    choices = [str(record[k]) for k in ("model", "parameterization", "augmentation") if record.get(k)]
    overrides = _overrides(job)
    rows = [("activation before → after", f"{initial if initial is None else round(initial, 4)} → "
                           f"{final if final is None else round(final, 4)}"), ("gain", gain)]
    terms = record.get("final_terms") if isinstance(record.get("final_terms"), dict) else {}
    rows += [(term, _number(value)) for term, value in terms.items() if term != "activation"]
    rows += [(k, _number(record[k])) for k in extra if is_number(record.get(k))]
    rows += [(k, record[k]) for k in ("text", "transcript", "ensemble_transcript", "listener_transcript",
                                      "whisper_transcript") if record.get(k) is not None]
    for verdict in VERDICTS:  # a judge's hit means something only beside how often it hears that label elsewhere
        if isinstance(record.get(f"{verdict}_hit"), bool):
            chance = _number(record.get(f"{verdict}_chance"))
            rows.append((f"{verdict} heard", ("yes" if record[f"{verdict}_hit"] else "no")
                         + ("" if chance is None else f" (elsewhere in this job: {chance:.2f})")))
    if isinstance(record.get("phones"), list):  # quality.judges: what a recognizer of human speech hears
        rows.append(("phones", " ".join(map(str, record["phones"])) or "(none)"))
    rows += [(k, str(record[k]).lower() if isinstance(record[k], bool) else record[k])
             for k in ("phone_at_target", "heard_as_label", "judges_note", "measures_note") if record.get(k) is not None]
    if isinstance(record.get("nearest_features"), list):  # objective=feature: its neighbours in the dictionary
        rows.append(("nearest_features", ", ".join(f"U{pair[0]} ({_number(pair[1]) or 0:.2f})"
                                                   for pair in record["nearest_features"]
                                                   if isinstance(pair, list) and len(pair) == 2)))
    files = {key: target_folder(job, name) / file for key, file in TARGET_FILES.items()}
    seconds, offset = _number(record.get("trace_hop_seconds")), _number(record.get("trace_offset_seconds"))
    frame = _number(record.get("frame"))
    trace = [_number(v) for v in record.get("activation_trace") or []] if isinstance(
        record.get("activation_trace"), list) else None
    return {
        "source": source, "name": name, "layer": str(record["layer"]), "model": record.get("model"),
        "character": record.get("character"),
        "phone": phone_name(record), "objective": str(record.get("objective")),
        "meta": " · ".join(([f"job {where}"] if where != "." else []) + choices + overrides),
        "stopped": record.get("stopped"), "rows": rows, "links": _links(job, media), "overrides": overrides,
        "audio": media(files["wav_16bit"], job), "spectrogram": media(files["spectrogram"], job),
        "_wav": inside(job, files["wav"]),  # for --shared-scale
        "waveform": record.get("waveform"), "trace": trace, "trace_hop": seconds, "trace_offset": offset,
        "seconds": len(trace or []) * seconds if seconds else None,
        "mark": None if frame is None or not seconds or offset is None else offset + frame * seconds,
        "examples": _examples(job, record.get("examples"), media),
        "clip_seconds": next((_number(e.get("clip_seconds")) for e in record.get("examples") or []
                              if isinstance(e, dict)), None) or 1.0,
        "text": " ".join([name, str(record.get("layer")), str(record.get("objective")), where, *choices, *overrides,
                          str(record.get("transcript") or ""), str(record.get("character") or ""),
                          " ".join(map(str, record.get("phones") or [])), _phone_words(record)]).lower(),
        "keys": {"unit": _number(record.get("unit")), "final_activation": final, "gain": gain,
                 **{k: _number(record.get(k)) for k in extra}},
    }


def _unit_card(source: int, root: Path, job: Path, summary: dict, unit: dict, media: _Media) -> dict:
    """A card of an `audiation.examples` job: a unit's natural examples, no audiation."""
    where = job.relative_to(root).as_posix()
    return {"source": source, "name": unit["name"], "layer": str(unit["layer"]), "character": None,
            "phone": phone_name(unit),
            "meta": " · ".join(([f"job {where}"] if where != "." else []) + [str(summary.get("model")), "examples"]),
            "stopped": None, "rows": [(f"dataset {k}", v) for k, v in unit["stats"].items()],
            "audio": None, "examples": _examples(job, unit["examples"], media),
            "clip_seconds": _number(summary.get("clip_seconds")) or 1.0,
            "text": f"{unit['name']} {unit['layer']} {where} examples {_phone_words(unit)}".lower(),
            "keys": {"unit": _number(unit["unit"]), "final_activation": _number(unit["stats"].get("max"))}}


def collect_cards(folders: list[Path], media: _Media) -> list[dict]:
    """Every card of every folder, in a first order of layer, unit, then job, which later sorts keep among ties."""
    cards = []
    for source, folder in enumerate(folders):
        if not folder.is_dir():
            raise AudiationError(f"{folder}: no such folder")
        jobs = read_jobs(folder)
        records = [(job, r) for job, metrics in jobs for r in metrics["targets"]]
        extra = sorted({k for _, r in records for k, v in r.items() if k not in _SHOWN and is_number(v)})
        cards += [_target_card(source, folder, job, r, extra, media) for job, r in records]
        cards += [_unit_card(source, folder, job, summary, unit, media)
                  for job, summary in read_examples_jobs(folder)
                  for unit in summary["units"]]
    if not cards:
        raise AudiationError(f"no metrics.json with targets or examples.json under {', '.join(map(str, folders))}")
    constant = constant_overrides(cards)
    for card in cards:  # what every card shares is said once, in the header
        card["meta"] = " · ".join(part for part in card["meta"].split(" · ") if part not in constant)
    ranks = {label: i for i, label in enumerate(sorted({c["layer"] for c in cards}, key=natural_key))}
    for card in cards:
        card["keys"]["layer"] = ranks[card["layer"]]
    cards.sort(key=lambda c: (c["keys"]["layer"], c["keys"]["unit"] is None, c["keys"]["unit"] or 0,
                              natural_key(c["meta"])))
    return cards


def constant_overrides(cards: list[dict]) -> list[str]:
    """The command-line overrides every audiation card shares (`model=tiny`, `steps=30`): the page says them
    once; each card shows only what varies."""
    lists = [c["overrides"] for c in cards if "overrides" in c]
    return [o for o in lists[0] if all(o in other for other in lists[1:])] if lists else []


def varying_keys(cards: list[dict]) -> list[str]:
    """The override keys whose values differ between the page's audiation cards (what was swept)."""
    assignments = [dict(o.split("=", 1) for o in c["overrides"] if "=" in o) for c in cards if "overrides" in c]
    keys = sorted({k for a in assignments for k in a}, key=natural_key)
    return [k for k in keys if len({a.get(k) for a in assignments}) > 1]


def _shared_scale(cards: list[dict], out: Path, media: _Media) -> None:
    """Draw every audiation's spectrogram again on one dB scale (the loudest bin of all, down 80 dB), into
    `<page>.shared/`, and point the cards at them: colours then compare across cards."""
    import numpy as np
    import soundfile as sf
    import torch

    from audiation.outputs.disk import (
        DYNAMIC_RANGE_DB,
        log_spectrograms,
        spectrogram_indices,
        spectrogram_png,
        write_bytes,
    )

    signals = {}
    for card in cards:
        wav = card.pop("_wav", None)
        if card.get("audio") and wav is not None:
            try:
                signals[id(card)] = sf.read(wav, dtype="float32")
            except (OSError, sf.SoundFileError) as error:  # damaged: that card keeps its own scale
                log.warning("warning: %s could not be read (%s); its spectrogram keeps its own scale", wav,
                            str(error).splitlines()[0][:80])
    if not signals:
        return
    peak = max(float(log_spectrograms(torch.from_numpy(x)[None])[0].max()) for x, _ in signals.values())
    folder = out.with_name(out.stem + ".shared")
    for number, card in enumerate(c for c in cards if id(c) in signals):
        signal, rate = signals[id(card)]
        indices, hop = spectrogram_indices(torch.from_numpy(np.asarray(signal))[None],
                                           (peak - DYNAMIC_RANGE_DB, peak))
        path = folder / f"{number:05d}.png"
        write_bytes(path, spectrogram_png(indices[0], hop, len(signal), rate, f"{card['name']} (shared scale)"))
        card["spectrogram"] = media(path, folder)


def what_it_shows(cards: list[dict], folders: list[Path]) -> str:
    """The page's heading: what its cards are and where they come from, e.g. `192 audiations of tiny-w2v2-espeak
    L6 · sweep 2026-12-03_08-00-00` (a job folder is named with its date folder: `job 2026-12-03/10-00-00`)."""
    audiations = sum("objective" in c for c in cards)  # the rest are units of `audiation.examples` jobs
    units = len(cards) - audiations
    models = sorted({str(c["model"]) for c in cards if c.get("model")})
    layers = sorted({c["layer"] for c in cards}, key=natural_key)
    what = " and ".join(part for part in (audiations and f"{audiations} audiation{'s' * (audiations != 1)}",
                                          units and f"{units} unit{'s' * (units != 1)}' natural examples") if part)
    of = " ".join([", ".join(models[:3]), ", ".join(layers[:6]) + (" …" if len(layers) > 6 else "")]).strip()

    def where(folder: Path) -> str:
        folder = folder.resolve()
        if (folder / "metrics.json").is_file():  # one job
            return f"job {folder.parent.name}/{folder.name}" if folder.parent.name[:1].isdigit() else f"job {folder.name}"
        return f"sweep {folder.name}"

    return f"{what} of {of} · {' vs '.join(where(f) for f in folders)}"


# Inside a <script> block the HTML tokenizer reacts to `</script`, and also to `<!--` and `<script` (the
# "double-escaped" state, where `</script>` no longer closes the block): with no `<`, `>` or `&` left, no
# text can change how the page parses. JSON.parse reads the escapes back as the same characters.
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def _json_for_script(value) -> str:
    """JSON that no text inside it can end or change its <script> element."""
    return json.dumps(value, separators=(",", ":")).translate(_SCRIPT_SAFE)


def write_gallery(folder: Path | list[Path], out: Path | None = None, embed: bool = False,
                  shared_scale: bool = False) -> Path:
    """Write the browser page of every target under `folder` (or several folders, side by side) to `out`
    (default `<first folder>/index.html`); `shared_scale`: every audiation's spectrogram on one dB scale."""
    folders = [Path(f) for f in (folder if isinstance(folder, (list, tuple)) else [folder])]
    out = Path(out) if out is not None else folders[0] / "index.html"
    media = _Media(out.parent, embed)
    cards = collect_cards(folders, media)
    if shared_scale:
        _shared_scale(cards, out, media)
    for card in cards:
        card.pop("_wav", None)
    keys = sorted({k for c in cards for k, v in c["keys"].items() if v is not None} - {"layer", "unit"})
    labels = record_schema.BY_KEY
    sorts = {"layer": "layer", "unit": "unit", **{k: labels[k].label if k in labels else k for k in keys}}
    e = html.escape
    heading = e(what_it_shows(cards, folders))
    varying, constant = varying_keys(cards), constant_overrides(cards)
    said = ([f"varies: {', '.join(varying)}"] if varying else []) + ([f"all: {' · '.join(constant)}"] if constant else [])
    summary = f'<p class="meta" id="summary">{len(cards)} card(s) · {e(" · ".join(said))}</p>' if said else ""
    reports = [(f, media.link(f / "report.md", f), media.link(f / "report.png", f)) for f in folders]
    reports = " · ".join(f'<a href="{e(md)}">report{"" if len(folders) == 1 else " of " + e(f.resolve().name)}</a>'
                         + (f' (<a href="{e(png)}">plots</a>)' if png else "") for f, md, png in reports if md)
    if reports:  # a sweep's report (sweep_report.py), per layer: what the cards add up to
        summary += f'<p class="meta" id="reports">{reports}</p>'
    page = f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{heading} · audiation</title>
<style>{(STATIC / "page.css").read_text()}</style>
<script>{(STATIC / "head.js").read_text()}</script></head>
<body>
<header><h1>{heading}</h1>{summary}
<label>sort by <select id="sort">{"".join(f'<option value="{e(k)}">{e(v)}</option>' for k, v in sorts.items())}</select></label>
<label><input type="checkbox" id="desc"> descending</label>
<input type="search" id="filter" placeholder="filter: name, layer, objective, override, transcript…" size="36">
<label>view <select id="view"><option value="cards">cards</option><option value="grid">layer × unit grid</option></select></label>
<label>per page <select id="size">{"".join(f'<option{" selected" if n == PAGE_SIZE else ""}>{n}</option>' for n in (12, 24, 48, 96))}</select></label>
<button id="prev">◀</button><button id="next">▶</button> <span id="shown"></span></header>
<main id="cards"></main>
<script type="application/json" id="data">{_json_for_script(cards)}</script>
<script type="application/json" id="sources">{_json_for_script([str(f) for f in folders])}</script>
<script type="application/json" id="fields">{_json_for_script(record_schema.for_page())}</script>
<script>{(STATIC / "page.js").read_text()}</script>
</body>
</html>
"""
    with atomic(out) as temporary:
        temporary.write_text(page, encoding="utf-8")
    return out
