const cards = JSON.parse(document.getElementById('data').textContent);
const sources = JSON.parse(document.getElementById('sources').textContent);
// The record schema (audiation/outputs/record_schema.py): each field's label, meaning and which way is better.
const fields = JSON.parse(document.getElementById('fields').textContent);
const $ = id => document.getElementById(id);
const esc = s => String(s ?? '–').replace(/[&<>"']/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));
const num = v => typeof v === 'number' ? (Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : +v.toPrecision(4)) : esc(v);  // esc: a dash for a missing value
const label = k => fields[k] ? fields[k].label : k;
const arrow = k => ({higher: ' ↑', lower: ' ↓'})[fields[k] && fields[k].better] || '';
const cell = k => `<td title="${esc(fields[k] ? fields[k].meaning : k)}">${esc(label(k))}${arrow(k)}</td>`;
let page = 0;
function line(values, times, span, mark) {
  if (!values || !values.length) return '';
  const lo = Math.min(...values, 0), hi = Math.max(...values, lo + 1e-9);
  const x = i => times ? 100 * times[i] / span : 100 * (values.length > 1 ? i / (values.length - 1) : .5);
  const pts = values.map((v, i) => `${x(i).toFixed(2)},${(30 - 28 * (v - lo) / (hi - lo)).toFixed(2)}`).join(' ');
  const m = mark == null ? '' : `<line x1="${100 * mark / span}" x2="${100 * mark / span}" y1="0" y2="32"/>`;
  return `<svg viewBox="0 0 100 32" preserveAspectRatio="none">${m}<polyline points="${pts}"/></svg>`;
}
function example(e, span) {
  return `<div class="example"><b>#${esc(e.rank)}</b> ${num(e.activation)} · ${esc(e.where)}${e.text ? ' · “' + esc(e.text) + '”' : ''}
    <audio controls preload="metadata" src="${esc(e.clip)}"></audio><img loading="lazy" src="${esc(e.spectrogram)}" alt="spectrogram">
    ${line(e.trace, e.trace_seconds, span, span / 2)}</div>`;
}
// A card shows its core (name, phone name, player, spectrogram, activation before → after) and keeps the
// rest (waveform, the unit over time, every other number, natural examples) in closed <details>: a page of
// cards stays one screen of units, and each opens on demand.
const CORE = new Set(['activation before → after', 'dataset max']);
function card(c) {
  if (!c) return '<article class="card empty"><p class="meta">not in this run</p></article>';
  const row = ([k, v]) => `<tr>${cell(k)}<td>${num(v)}</td></tr>`;
  const core = c.rows.filter(([k]) => CORE.has(k)), more = c.rows.filter(([k]) => !CORE.has(k));
  const trace = c.trace ? `<div class="label">the unit over time on its audiation${c.mark != null ? ' (target frame marked)' : ''}</div>` +
    line(c.trace, c.trace.map((_, i) => c.trace_offset + i * c.trace_hop), c.seconds, c.mark) : '';
  const lines = c.audio ? `<div class="label">waveform</div>${line(c.waveform)}${trace}` : '';
  const what = [c.audio && 'waveform', c.trace && 'the unit over time', more.length && `${more.length} more numbers`];
  const details = lines || more.length ? `<details class="more"><summary>${what.filter(Boolean).join(', ')}</summary>
    ${lines}<table>${more.map(row).join('')}</table></details>` : '';
  const examples = c.examples && c.examples.length ? `<details class="natural"><summary>${c.examples.length} natural examples</summary>
    <div class="examples">${c.examples.map(e => example(e, c.clip_seconds)).join('')}</div></details>` : '';
  const media = c.audio ? `<audio controls preload="metadata" src="${esc(c.audio)}"></audio>
    <img loading="lazy" src="${esc(c.spectrogram)}" alt="spectrogram of ${esc(c.name)}">` : '';
  return `<article class="card" data-name="${esc(c.name)}"><h2>${esc(c.name)}${c.character ? ' · “' + esc(c.character) + '”' : ''}${c.phone ? ' · ' + esc(c.phone) : ''}</h2>
    <p class="meta">${esc(c.meta)}</p>${c.stopped ? `<p class="meta stopped">stopped: ${esc(c.stopped)}</p>` : ''}
    ${(c.links || []).length ? `<p class="meta links">${c.links.map(([label, href]) => `<a href="${esc(href)}">${esc(label)}</a>`).join(' · ')}</p>` : ''}
    ${media}<table>${core.map(row).join('')}</table>${details}${examples}</article>`;
}
// Colours of the grid, low to high (viridis at five stops): "better" is always the bright end.
const STOPS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function colour(t) {
  const x = Math.min(Math.max(t, 0), 1) * (STOPS.length - 1), i = Math.min(Math.floor(x), STOPS.length - 2), f = x - i;
  return `rgb(${STOPS[i].map((v, j) => Math.round(v + f * (STOPS[i + 1][j] - v))).join(',')})`;
}
// The layer x unit grid of the shown cards, coloured by the sort field: one row per layer (and objective,
// and folder, where those differ), one column per unit; a cell with several cards shows their mean. A layer
// of more than LINE units wraps into lines of LINE (768 units: 12 lines), so the grid never scrolls sideways.
// Colours span the 2nd to 98th percentile (with 50 values or more), so one outlier cannot wash out the rest;
// far outliers (beyond 3 interquartile ranges of the quartiles) are outlined.
const LINE = 64;
function grid(shown, key) {
  const units = [...new Set(shown.map(c => c.keys.unit).filter(u => u != null))].sort((a, b) => a - b);
  const many = (f) => new Set(shown.map(f)).size > 1;
  const byObjective = many(c => c.objective), bySource = sources.length > 1;
  const rows = new Map();
  shown.filter(c => c.keys.unit != null).forEach(c => {
    const row = [c.layer, byObjective ? c.objective : null, bySource ? `#${c.source + 1}` : null].filter(Boolean).join(' ');
    if (!rows.has(row)) rows.set(row, {rank: c.keys.layer, cells: new Map()});
    const cells = rows.get(row).cells;
    if (!cells.has(c.keys.unit)) cells.set(c.keys.unit, []);
    cells.get(c.keys.unit).push(c);
  });
  const mean = cs => { const v = cs.map(c => c.keys[key]).filter(x => x != null); return v.length ? v.reduce((a, b) => a + b) / v.length : null; };
  const values = [...rows.values()].flatMap(r => [...r.cells.values()].map(mean)).filter(v => v != null).sort((a, b) => a - b);
  const rank = p => values[Math.round(p * (values.length - 1))], robust = values.length >= 50;
  const lo = robust ? rank(.02) : values[0], hi = robust ? rank(.98) : values[values.length - 1];
  const q1 = rank(.25), q3 = rank(.75), fence = 3 * (q3 - q1);  // Tukey's far-out fences: what is outlined
  const lower = fields[key] && fields[key].better === 'lower', beyond = v => robust && v != null && (v < q1 - fence || v > q3 + fence);
  const shade = v => v == null ? '#eee' : colour(hi > lo ? (lower ? hi - v : v - lo) / (hi - lo) : .5);
  const width = Math.min(units.length, LINE), wraps = units.length > LINE, every = Math.max(1, Math.ceil(width / 32));
  const head = (wraps ? units.slice(0, width).map((_, i) => `+${i}`) : units).map((u, i) => `<th>${i % every ? '' : esc(u)}</th>`).join('');
  const lines = [...rows.entries()].sort(([a, x], [b, y]) => x.rank - y.rank || (a < b ? -1 : 1)).flatMap(([row, r]) =>
    Array.from({length: Math.ceil(units.length / width)}, (_, k) => units.slice(k * width, (k + 1) * width)).map(part =>
      [wraps ? `${row} ${part[0]}–${part[part.length - 1]}` : row, r, part]));
  const body = lines.map(([row, r, part]) =>
    `<tr><th>${esc(row)}</th>${part.map(u => { const cs = r.cells.get(u) || [], v = cs.length ? mean(cs) : null;
      return cs.length ? `<td class="cell${beyond(v) ? ' outlier' : ''}" style="background:${shade(v)}" data-name="${esc(cs[0].name)}" title="${esc(cs.map(c => c.name).join(', '))}: ${esc(label(key))} ${num(v)}${beyond(v) ? ' (a far outlier)' : ''}"></td>` : '<td></td>'; }).join('')}</tr>`).join('');
  const outliers = values.filter(beyond).length;
  const legend = values.length ? `<p class="meta" id="legend">colour: ${esc(label(key))}${arrow(key)} from ${num(lower ? hi : lo)} <span class="swatch" style="background:${colour(0)}"></span>` +
    ` to <span class="swatch" style="background:${colour(1)}"></span> ${num(lower ? lo : hi)}${robust ? ` (2nd to 98th percentile of ${num(values[0])} … ${num(values[values.length - 1])}; ${outliers} far outlier(s), beyond 3 IQR of the quartiles, outlined)` : ''}` +
    `${fields[key] ? ' · ' + esc(fields[key].meaning) : ''} · click a cell for its card</p>` :
    `<p class="meta" id="legend">no card has ${esc(label(key))}</p>`;
  return `${legend}<div class="gridwrap"><table class="grid"><tr><th>${wraps ? 'layer units \\ +unit' : 'layer \\ unit'}</th>${head}</tr>${body}</table></div>`;
}
function update() {
  const key = $('sort').value, sign = $('desc').checked ? -1 : 1;
  const words = $('filter').value.toLowerCase().split(/\s+/);  // an empty word is in every text
  const size = +$('size').value;
  // Sorted from the original order every time, and sort is stable, so ties keep it; missing values go last.
  const shown = cards.filter(c => words.every(w => c.text.includes(w)));
  shown.sort((a, b) => { const x = a.keys[key], y = b.keys[key];
    return x == null || y == null ? (x == null) - (y == null) : sign * (x - y); });
  if ($('view').value === 'grid') {
    $('cards').className = 'gridview';
    $('cards').innerHTML = grid(shown, ['layer', 'unit'].includes(key) ? 'final_activation' : key);
    $('shown').textContent = `${shown.length} of ${cards.length} shown`;
    $('prev').disabled = $('next').disabled = true;
    return;
  }
  let groups = shown.map(c => [c]);
  if (sources.length > 1) {  // side by side: one row per target name, one card per folder
    const byName = new Map();
    shown.forEach(c => { if (!byName.has(c.name)) byName.set(c.name, Array(sources.length).fill(null)); byName.get(c.name)[c.source] = c; });
    groups = [...byName.values()];
  }
  const pages = Math.max(1, Math.ceil(groups.length / size));
  page = Math.min(page, pages - 1);
  const visible = groups.slice(page * size, (page + 1) * size);
  $('cards').className = sources.length > 1 ? 'compare' : '';
  $('cards').innerHTML = visible.map(g => sources.length > 1 ? `<div class="row">${g.map(card).join('')}</div>` : card(g[0])).join('');
  $('shown').textContent = `${shown.length} of ${cards.length} shown · page ${page + 1} of ${pages}`;
  $('prev').disabled = page === 0; $('next').disabled = page >= pages - 1;
}
// The view, sort, filter and page live in the address's #fragment too, so a reload or a shared link shows the
// same, and after a grid cell opened its card the browser's Back returns to the grid. Only what differs from the
// page's defaults is written.
const DEFAULTS = {view: $('view').value, sort: $('sort').value};
function state() {
  const hash = new URLSearchParams();
  if ($('view').value !== DEFAULTS.view) hash.set('view', $('view').value);
  if ($('sort').value !== DEFAULTS.sort) hash.set('sort', $('sort').value);
  if ($('desc').checked) hash.set('desc', '1');
  if ($('filter').value) hash.set('filter', $('filter').value);
  if (page) hash.set('page', page + 1);
  return hash.toString();
}
function choose(select, value) {  // a value the select does not offer (an old or edited link) leaves its default
  select.value = value;
  if (select.value !== value) select.value = DEFAULTS[select.id];
}
function fromHash() {
  const hash = new URLSearchParams(location.hash.slice(1));
  choose($('view'), hash.get('view') || DEFAULTS.view);
  choose($('sort'), hash.get('sort') || DEFAULTS.sort);
  $('desc').checked = hash.has('desc');
  $('filter').value = hash.get('filter') || '';
  page = Math.max(0, (parseInt(hash.get('page'), 10) || 1) - 1);
}
function show() {  // what the controls say, drawn and mirrored in place (no history entry per keystroke)
  update();
  if (location.hash.slice(1) !== state()) location.replace('#' + state());
}
['sort', 'desc', 'filter', 'size', 'view'].forEach(id => $(id).addEventListener('input', () => { page = 0; show(); }));
$('prev').addEventListener('click', () => { page--; show(); });
$('next').addEventListener('click', () => { page++; show(); });
$('cards').addEventListener('click', e => {  // a grid cell opens its card, as a new history entry
  const name = e.target.classList.contains('cell') && e.target.dataset.name;
  if (name) { $('filter').value = name.toLowerCase(); $('view').value = 'cards'; page = 0; location.hash = state(); update(); }
});
window.addEventListener('hashchange', () => { if (location.hash.slice(1) !== state()) { fromHash(); show(); } });
fromHash();
show();
