"""The gallery page: one self-contained `index.html` to browse audiation results
(`python -m audiation.gallery <folder>`, and written at the end of every multirun).

Every `metrics.json` under the folder (a sweep, a single job, or a folder of both) gives one card per
target: its spectrogram, an audio player, and its numbers (layer, unit, objective, activation before
and after, the other loss terms and any other numeric field of the record, such as a quality metric
added later). Cards sort by layer (naturally: conv1 < L2 < L10 < logits), unit, final activation,
activation gain (final - initial) or any other numeric field, and a text filter matches names, layers,
objectives, models and the job's Hydra overrides.

The PNG and the 16-bit WAV are embedded as base64 data URIs, so the page opens from disk, copied
anywhere, with no server and no network. Files are found relative to each job folder
(`targets/<name>/...`), never by the absolute paths recorded at run time, so a moved folder still works.
That costs about 100 KB per target (the spectrogram PNG 10-60 KB, one second of audio ~45 KB).
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

from omegaconf import OmegaConf

from audiation.errors import AudiationError
from audiation.outputs import atomic
from audiation.results import natural_key, read_jobs

# Record fields the card shows in its own way; every other numeric field is listed as it is.
_SHOWN = {"unit", "initial_activation", "final_activation"}

_STYLE = """
body { font: 14px system-ui, sans-serif; margin: 1.5em; background: #fafafa; color: #222; }
header { position: sticky; top: 0; background: #fafafa; padding: .5em 0; z-index: 1; }
header label, header input { margin-right: 1em; }
main { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 1em; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .8em; }
.card h2 { font-size: 1.05em; margin: 0 0 .3em; }
.meta, .missing { color: #666; font-size: .85em; margin: 0 0 .5em; }
.stopped { color: #b00; }
.card img { width: 100%; }
.card audio { width: 100%; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
td { padding: 1px .8em 1px 0; }
"""

# Media events do not bubble, but a capture listener on the document, registered before the cards are
# parsed, sees every one. The decoded duration it records shows the audio plays (the browser test reads it).
_HEAD_SCRIPT = """
document.addEventListener('loadedmetadata', e => {
  e.target.dataset.duration = e.target.duration;
  document.body.dataset.audioLoaded = document.querySelectorAll('audio[data-duration]').length;
}, true);
"""

_SCRIPT = """
const cards = [...document.querySelectorAll('.card')];
cards.forEach(c => c.keys = JSON.parse(c.dataset.keys));
const [sort, desc, filter, shown] = ['sort', 'desc', 'filter', 'shown'].map(id => document.getElementById(id));
function update() {
  const key = sort.value, sign = desc.checked ? -1 : 1;
  const words = filter.value.toLowerCase().split(/\\s+/).filter(Boolean);
  // Sort the cards in their original order every time, so ties keep it; missing values go last.
  const order = cards.slice().sort((a, b) => {
    const x = a.keys[key], y = b.keys[key];
    return x == null || y == null ? (x == null) - (y == null) : sign * (x - y);
  });
  order.forEach(c => c.hidden = !words.every(w => c.dataset.text.includes(w)));
  document.getElementById('cards').append(...order);
  shown.textContent = `${order.filter(c => !c.hidden).length} of ${cards.length} shown`;
}
[sort, desc, filter].forEach(e => e.addEventListener('input', update));
update();
"""


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value) -> float | None:
    """A finite float for a number, else None (NaN is not JSON, and has no place in an order)."""
    return float(value) if _is_number(value) and math.isfinite(value) else None


def _text(value) -> str:
    if value is None:
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _data_uri(path: Path, mime: str) -> str | None:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}" if path.is_file() else None


def _overrides(job: Path) -> list[str]:
    """The job's command-line overrides: in a sweep, what tells its cards apart."""
    path = job / ".hydra" / "overrides.yaml"
    return [str(o) for o in OmegaConf.load(path)] if path.is_file() else []


def _card(folder: Path, job: Path, record: dict, layer_rank: dict[str, int], extra: list[str]) -> str:
    name, layer = str(record["name"]), str(record["layer"])
    initial, final = _number(record.get("initial_activation")), _number(record.get("final_activation"))
    gain = None if initial is None or final is None else final - initial
    keys = {"layer": layer_rank[layer], "unit": _number(record.get("unit")), "final_activation": final,
            "gain": gain, **{k: _number(record.get(k)) for k in extra}}
    where = job.relative_to(folder).as_posix()  # "." when the folder is the job itself
    overrides = _overrides(job)
    choices = [str(record[k]) for k in ("model", "parameterization", "augmentation") if record.get(k)]
    text = " ".join([name, layer, str(record.get("objective")), where, *choices, *overrides,
                     str(record.get("transcript") or "")]).lower()

    files = job / "targets" / name
    image = _data_uri(files / "spectrogram.png", "image/png")
    audio = _data_uri(files / "audio_16bit.wav", "audio/wav")
    e = html.escape
    rows = [("layer", layer), ("unit", _text(record.get("unit"))), ("objective", _text(record.get("objective"))),
            ("activation", f"{_text(initial)} → {_text(final)}"),
            ("gain", "–" if gain is None else f"{gain:+.4g}")]
    initial_terms, final_terms = record.get("initial_terms") or {}, record.get("final_terms") or {}
    rows += [(term, f"{_text(initial_terms.get(term))} → {_text(value)}")
             for term, value in final_terms.items() if term != "activation"]
    rows += [(k, _text(record[k])) for k in extra if _is_number(record.get(k))]
    rows += [(k, str(record[k])) for k in ("text", "transcript") if record.get(k) is not None]  # heard vs asked
    parts = [
        f'<article class="card" data-keys="{e(json.dumps(keys))}" data-text="{e(text)}">',
        f"<h2>{e(name)}</h2>",
        f'<p class="meta">{e(" · ".join(([f"job {where}"] if where != "." else []) + choices))}'
        + (f"<br>{e(' '.join(overrides))}" if overrides else "") + "</p>",
    ]
    if record.get("stopped"):
        parts.append(f'<p class="meta stopped">stopped: {e(str(record["stopped"]))}</p>')
    parts.append(f'<img src="{image}" alt="spectrogram of {e(name)}">' if image
                 else f'<p class="missing">no {e(str(files / "spectrogram.png"))}</p>')
    parts.append(f'<audio controls preload="metadata" src="{audio}"></audio>' if audio
                 else f'<p class="missing">no {e(str(files / "audio_16bit.wav"))}</p>')
    parts.append("<table>" + "".join(f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in rows) + "</table>")
    return "\n".join(parts) + "\n</article>"


def write_gallery(folder: Path, out: Path | None = None) -> Path:
    """Write the gallery of every target under `folder` to `out` (default `<folder>/index.html`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AudiationError(f"{folder}: no such folder")
    jobs = read_jobs(folder)
    records = [(job, record) for job, metrics in jobs for record in metrics["targets"]]
    if not records:
        raise AudiationError(f"no metrics.json with targets under {folder}")
    layer_rank = {label: i for i, label in enumerate(sorted({str(r["layer"]) for _, r in records}, key=natural_key))}
    extra = sorted({k for _, r in records for k, v in r.items() if k not in _SHOWN and _is_number(v)})
    # The page's first order, which every later sort keeps among ties: layer, unit, then job.
    records.sort(key=lambda jr: (layer_rank[str(jr[1]["layer"])], _number(jr[1].get("unit")) is None,
                                 _number(jr[1].get("unit")) or 0, natural_key(str(jr[0].relative_to(folder)))))
    sorts = {"layer": "layer", "unit": "unit", "final_activation": "final activation",
             "gain": "activation gain", **{k: k for k in extra}}
    e = html.escape
    title = e(folder.resolve().name)
    page = f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{title} · audiation</title>
<style>{_STYLE}</style>
<script>{_HEAD_SCRIPT}</script></head>
<body>
<header><h1>{title}</h1>
<p>{len(records)} target(s) from {len(jobs)} job(s)</p>
<label>sort by <select id="sort">{"".join(f'<option value="{e(k)}">{e(v)}</option>' for k, v in sorts.items())}</select></label>
<label><input type="checkbox" id="desc"> descending</label>
<input type="search" id="filter" placeholder="filter: name, layer, objective, override…" size="40">
<span id="shown"></span></header>
<main id="cards">
{chr(10).join(_card(folder, job, record, layer_rank, extra) for job, record in records)}
</main>
<script>{_SCRIPT}</script>
</body>
</html>
"""
    out = Path(out) if out is not None else folder / "index.html"
    with atomic(out) as temporary:
        temporary.write_text(page, encoding="utf-8")
    return out
