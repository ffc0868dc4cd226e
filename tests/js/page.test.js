// The page's script (audiation/browser/static/page.js) as a reader meets it: what each card and the grid draw,
// how every text is escaped, how sorting, filtering, paging and the address's fragment behave. Run by
// `node --test tests/js/page.test.js` (tests/test_page_js.py runs it in the suite) and by `make mutants-js`,
// which mutates page.js and counts the mutants these tests kill.
const test = require('node:test');
const assert = require('node:assert/strict');
const {open} = require('./harness');

const HOSTILE = `<img src=x onerror=alert(1)>"'&`;
const ESCAPED = '&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;';
const count = (text, part) => text.split(part).length - 1;
const names = html => [...html.matchAll(/<article class="card" data-name="([^"]*)"/g)].map(m => m[1]);
const card = (name, more = {}) => ({name, source: 0, meta: '', rows: [], text: name.toLowerCase(), keys: {}, ...more});
const cardsView = (cards, more = {}) => open({cards, view: 'cards', sort: 'gain', ...more});

test('every text of a card is escaped, each of & < > " \' as its entity, in every place it is drawn', () => {
  const page = cardsView([card(HOSTILE, {
    character: HOSTILE, phone: HOSTILE, meta: HOSTILE, stopped: HOSTILE, links: [[HOSTILE, HOSTILE]],
    audio: HOSTILE, spectrogram: HOSTILE, rows: [[HOSTILE, HOSTILE]],
    examples: [{rank: HOSTILE, activation: HOSTILE, where: HOSTILE, text: HOSTILE, clip: HOSTILE, spectrogram: HOSTILE}],
  })]);
  assert.ok(!page.html.includes('<img src=x'));
  // name x3 (data-name, heading, alt), character, phone, meta, stopped, link text and href, audio, spectrogram,
  // the row's key x2 (title, label) and value, the example's rank, activation, place, text, clip, spectrogram
  assert.equal(count(page.html, ESCAPED), 20);
});

test('every text of the grid is escaped: row, cell name, title and the legend', () => {
  const fields = {[HOSTILE]: {label: HOSTILE, meaning: HOSTILE, better: 'higher'}};
  const page = open({cards: [card(HOSTILE, {layer: HOSTILE, objective: 'unit', keys: {layer: 0, unit: 0, [HOSTILE]: 1}})],
    fields, sort: HOSTILE});
  assert.ok(!page.html.includes('<img src=x'));
  // the row, the cell's data-name, its title's name and label, the legend's label and meaning
  assert.equal(count(page.html, ESCAPED), 6);
});

test('numbers: four significant digits, exponents outside 1e-3..1e4, a dash for a missing value', () => {
  const values = [null, 0, 3.14159, 9999, 10000, 12346, -20000, 0.001, 0.0001, -0.00012, 'a<b'];
  const page = cardsView([card('n', {rows: values.map((v, i) => [`k${i}`, v])})]);
  const shown = [...page.html.matchAll(/<tr><td title="k\d+">k\d+<\/td><td>([^<]*)<\/td><\/tr>/g)].map(m => m[1]);
  assert.deepEqual(shown, ['–', '0', '3.142', '9999', '1.000e+4', '1.235e+4', '-2.000e+4', '0.001', '1.000e-4',
    '-1.200e-4', 'a&lt;b']);
});

test("a row's label, meaning and arrow come from the record schema's fields", () => {
  const fields = {gain: {label: 'gain ratio', meaning: 'after / before', better: 'higher'},
    loss: {label: 'the loss', meaning: 'lower is better', better: 'lower'}, other: {label: 'o', meaning: 'm', better: 'either'}};
  const page = cardsView([card('f', {rows: [['gain', 1], ['loss', 2], ['other', 3], ['raw', 4]]})], {fields});
  for (const cell of ['<td title="after / before">gain ratio ↑</td>', '<td title="lower is better">the loss ↓</td>',
    '<td title="m">o</td>', '<td title="raw">raw</td>']) assert.ok(page.html.includes(cell), cell);
});

test('lines: values span the box from the lower of their minimum and 0 to their maximum', () => {
  const points = waveform => cardsView([card('w', {audio: 'a.wav', waveform})]).html.match(/<polyline points="([^"]*)"/)[1];
  assert.equal(points([0, 1]), '0.00,30.00 100.00,2.00');
  assert.equal(points([-1, 1]), '0.00,30.00 100.00,2.00');
  assert.equal(points([2, 3]), '0.00,11.33 100.00,2.00');
  assert.equal(points([0, 0.5, 1]), '0.00,30.00 50.00,16.00 100.00,2.00');
  assert.equal(points([5]), '50.00,2.00');
  assert.equal(points([0, 0]), '0.00,30.00 100.00,30.00');
  assert.ok(!cardsView([card('w', {audio: 'a.wav', waveform: []})]).html.includes('<svg'));
});

test("the unit's trace is drawn at its frames' times and its target frame is marked", () => {
  const html = cardsView([card('t', {audio: 'a.wav', waveform: [0, 1], trace: [1, 2], trace_offset: 0.5, trace_hop: 0.25,
    seconds: 2, mark: 1})]).html;
  assert.ok(html.includes('the unit over time on its audiation (target frame marked)'));
  assert.ok(html.includes('<line x1="50" x2="50" y1="0" y2="32"/><polyline points="25.00,16.00 37.50,2.00"/>'));
  const unmarked = cardsView([card('t', {audio: 'a.wav', waveform: [0, 1], trace: [1, 2], trace_offset: 0, trace_hop: 1,
    seconds: 2})]).html;
  assert.ok(unmarked.includes('the unit over time on its audiation</div>') && !unmarked.includes('<line'));
});

test("a card keeps its core in view and the rest, counted, in closed details", () => {
  const rows = [['activation before → after', 'a'], ['dataset max', 2], ['gain', 3], ['loss', 4]];
  const html = cardsView([card('c', {rows, audio: 'a.wav', spectrogram: 's.png', waveform: [0, 1], trace: [1], trace_offset: 0,
    trace_hop: 1, seconds: 1})]).html;
  const [core, more] = html.split('<details class="more">');
  assert.ok(core.includes('activation before → after') && core.includes('dataset max') && !core.includes('gain'));
  assert.ok(more.startsWith('<summary>waveform, the unit over time, 2 more numbers</summary>') && more.includes('loss'));
  assert.ok(core.includes('<audio controls preload="metadata" src="a.wav"></audio>'));
  assert.ok(core.includes('<img loading="lazy" src="s.png" alt="spectrogram of c">'));
  const numbersOnly = cardsView([card('c', {rows: [['gain', 3]]})]).html;
  assert.ok(numbersOnly.includes('<summary>1 more numbers</summary>') && !numbersOnly.includes('<audio'));
  assert.ok(!cardsView([card('c', {rows: [['dataset max', 2]]})]).html.includes('<details'));
});

test("a card's heading, stop, links and natural examples", () => {
  const examples = [{rank: 1, activation: 2.5, where: 'a.wav 0.5 s', text: 'sun', clip: 'e1.wav', spectrogram: 'e1.png',
    trace: [0, 1], trace_seconds: [0, 1]}, {rank: 2, activation: 1, where: 'b.wav', clip: 'e2.wav', spectrogram: 'e2.png'}];
  const html = cardsView([card('L6-U1', {character: 's', phone: '/S/ x9', meta: 'm', stopped: 'not finite',
    links: [['job', 'j/index.html'], ['audio', 'a.wav']], examples, clip_seconds: 2})]).html;
  assert.ok(html.includes('<h2>L6-U1 · “s” · /S/ x9</h2>'));
  assert.ok(html.includes('<p class="meta stopped">stopped: not finite</p>'));
  assert.ok(html.includes('<p class="meta links"><a href="j/index.html">job</a> · <a href="a.wav">audio</a></p>'));
  assert.ok(html.includes('<summary>2 natural examples</summary>'));
  assert.ok(html.includes('<b>#1</b> 2.5 · a.wav 0.5 s · “sun”') && html.includes('<b>#2</b> 1 · b.wav\n'));
  assert.ok(html.includes('<line x1="50" x2="50" y1="0" y2="32"/><polyline points="0.00,30.00 50.00,2.00"/>'));
  const plain = cardsView([card('p', {examples: []})]).html;
  assert.ok(plain.includes('<h2>p</h2>') && !plain.includes('stopped') && !plain.includes('links') && !plain.includes('natural'));
});

const SEVEN = [3, null, 1, 3, 2, null, 5].map((gain, i) =>
  card(`c${i}`, {text: `c${i} ${i % 2 ? 'odd' : 'even'}`, keys: {gain}}));

test('sorting: by the chosen field either way, ties in their order, missing values last', () => {
  const page = cardsView(SEVEN);
  assert.deepEqual(names(page.html), ['c2', 'c4', 'c0', 'c3', 'c6', 'c1', 'c5']);
  page.input('desc', true);
  assert.deepEqual(names(page.html), ['c6', 'c0', 'c3', 'c4', 'c2', 'c1', 'c5']);
});

test('filtering: every word must be in the card text, whatever its case', () => {
  const page = cardsView(SEVEN);
  page.input('filter', 'EVEN  c');
  assert.deepEqual(names(page.html), ['c2', 'c4', 'c0', 'c6']);
  assert.equal(page.el('shown').textContent, '4 of 7 shown · page 1 of 1');
  page.input('filter', 'odd c5');
  assert.deepEqual(names(page.html), ['c5']);
});

test('paging: pages of the chosen size, the buttons off at either end, a new filter back on page 1', () => {
  const page = cardsView(SEVEN, {size: '3'});
  const at = () => [names(page.html), page.el('shown').textContent, page.el('prev').disabled, page.el('next').disabled];
  assert.deepEqual(at(), [['c2', 'c4', 'c0'], '7 of 7 shown · page 1 of 3', true, false]);
  page.click('next');
  assert.deepEqual(at(), [['c3', 'c6', 'c1'], '7 of 7 shown · page 2 of 3', false, false]);
  page.click('next');
  assert.deepEqual(at(), [['c5'], '7 of 7 shown · page 3 of 3', false, true]);
  assert.equal(page.location.hash, '#page=3');
  page.click('prev');
  assert.equal(page.location.hash, '#page=2');
  page.input('filter', 'c');
  assert.deepEqual(at(), [['c2', 'c4', 'c0'], '7 of 7 shown · page 1 of 3', true, false]);
  assert.equal(cardsView([], {size: '3'}).el('shown').textContent, '0 of 0 shown · page 1 of 1');
});

test('folders side by side: a row per target name, a card per folder, a gap where a folder lacks it', () => {
  const cards = [card('x', {source: 0, meta: 'x in a'}), card('x', {source: 1, meta: 'x in b'}), card('y', {source: 1})];
  const page = cardsView(cards, {sources: ['a', 'b']});
  assert.equal(page.el('cards').className, 'compare');
  const rows = page.html.split('<div class="row">').slice(1);
  assert.equal(rows.length, 2);
  assert.ok(rows[0].indexOf('x in a') < rows[0].indexOf('x in b'));
  assert.ok(rows[1].indexOf('not in this run') < rows[1].indexOf('data-name="y"'));
  assert.equal(cardsView(cards.slice(0, 1)).el('cards').className, '');
});

const unit = (layer, rank, u, value, more = {}) => card(`${layer}-U${u}`, {layer, objective: 'channel',
  keys: {layer: rank, unit: u, final_activation: value}, ...more});
const colours = html => Object.fromEntries([...html.matchAll(/style="background:([^"]+)" data-name="([^"]+)"/g)].map(m => [m[2], m[1]]));

test('the grid: viridis from the lowest to the highest value, exact at its stops and between them', () => {
  const page = open({cards: [0, 1, 2, 3, 4].map(v => unit('L6', 0, v, v)).concat([unit('L7', 1, 0, 0.5)])});
  assert.equal(page.el('cards').className, 'gridview');
  assert.deepEqual(colours(page.html), {'L6-U0': 'rgb(68,1,84)', 'L6-U1': 'rgb(59,82,139)', 'L6-U2': 'rgb(33,145,140)',
    'L6-U3': 'rgb(94,201,98)', 'L6-U4': 'rgb(253,231,37)', 'L7-U0': 'rgb(64,42,112)'});
  assert.equal(page.el('shown').textContent, '6 of 6 shown');
  assert.ok(page.el('prev').disabled && page.el('next').disabled);
  // L7 has no unit 1..4: empty cells
  assert.ok(page.html.includes('<tr><th>L7</th><td class="cell" style="background:rgb(64,42,112)" data-name="L7-U0" ' +
    'title="L7-U0: final_activation 0.5"></td><td></td><td></td><td></td><td></td></tr>'));
  assert.ok(page.html.includes('colour: final_activation from 0 <span class="swatch" style="background:rgb(68,1,84)"></span>' +
    ' to <span class="swatch" style="background:rgb(253,231,37)"></span> 4 · click a cell for its card'));
});

test('the grid: lower-is-better fields are bright at their lowest, equal values mid-scale, no value said', () => {
  const fields = {loss: {label: 'loss', meaning: 'the loss', better: 'lower'}};
  const loss = [0, 1, 2].map(v => ({...unit('L6', 0, v, null), keys: {layer: 0, unit: v, loss: v}}));
  const page = open({cards: loss, fields, sort: 'loss'});
  assert.deepEqual(colours(page.html), {'L6-U0': 'rgb(253,231,37)', 'L6-U1': 'rgb(33,145,140)', 'L6-U2': 'rgb(68,1,84)'});
  assert.ok(page.html.includes('colour: loss ↓ from 2 <span') && page.html.includes('</span> 0 · the loss · click'));
  const equal = open({cards: [0, 1].map(u => unit('L6', 0, u, 7))});
  assert.deepEqual(Object.values(colours(equal.html)), ['rgb(33,145,140)', 'rgb(33,145,140)']);
  assert.ok(open({cards: [unit('L6', 0, 0, null)]}).html.includes('<p class="meta" id="legend">no card has final_activation</p>'));
});

test("the grid: a cell is the mean of its cards; rows by layer's rank, then objective or folder where those differ", () => {
  const page = open({cards: [unit('L6', 0, 0, 1), unit('L6', 0, 0, 3, {name: 'again'}), unit('L2', 5, 1, 2, {objective: 'unit'}),
    unit('L10', 1, 0, 0)]});
  assert.deepEqual([...page.html.matchAll(/<tr><th>([^<]*)<\/th>/g)].map(m => m[1]), ['layer \\ unit', 'L6 channel', 'L10 channel', 'L2 unit']);
  assert.ok(page.html.includes('title="L6-U0, again: final_activation 2"'));
  const folders = open({cards: [unit('L6', 0, 0, 1), unit('L6', 0, 0, 2, {source: 1})], sources: ['a', 'b']});
  assert.deepEqual([...folders.html.matchAll(/<tr><th>([^<]*)<\/th>/g)].map(m => m[1]).slice(1), ['L6 #1', 'L6 #2']);
  // sorting by layer or unit colours by the final activation
  assert.ok(open({cards: [unit('L6', 0, 0, 1)], sort: 'layer'}).html.includes('colour: final_activation'));
});

test('the grid: columns labelled every other unit past 32, percentiles only from 50 values', () => {
  const wide = open({cards: Array.from({length: 40}, (_, u) => unit('L6', 0, u, u))});
  const heads = [...wide.html.matchAll(/<th>([^<]*)<\/th>/g)].map(m => m[1]).slice(1, 6);
  assert.deepEqual(heads, ['0', '', '2', '', '4']);
  assert.ok(!wide.html.includes('percentile'));
  const many = open({cards: Array.from({length: 50}, (_, u) => unit('L6', 0, u, u))});
  assert.ok(many.html.includes('(2nd to 98th percentile of 0 … 49; 0 far outlier(s), beyond 3 IQR of the quartiles, outlined)'));
  assert.ok(many.html.includes('from 1 <span') && many.html.includes('</span> 48 ('));
  const wrapped = open({cards: Array.from({length: 65}, (_, u) => unit('L6', 0, u, u))});
  assert.ok(wrapped.html.includes('<th>layer units \\ +unit</th><th>+0</th><th></th><th>+2</th>'));
});

test("the address keeps only what differs from the page's defaults, and opening it restores the controls", () => {
  const page = cardsView(SEVEN, {size: '3'});
  assert.deepEqual(page.entries, ['']);
  page.input('view', 'grid');
  page.input('sort', 'final_activation');
  page.input('desc', true);
  page.input('filter', 'c');
  assert.deepEqual(page.entries, ['view=grid&sort=final_activation&desc=1&filter=c']);  // replaced, not pushed
  const opened = cardsView(SEVEN, {size: '3', fragment: '#sort=final_activation&desc=1&filter=even&page=2'});
  assert.deepEqual([opened.el('view').value, opened.el('sort').value, opened.el('desc').checked, opened.el('filter').value],
    ['cards', 'final_activation', true, 'even']);
  assert.equal(opened.el('shown').textContent, '4 of 7 shown · page 2 of 2');
  for (const fragment of ['#sort=bogus&view=bogus', '#page=abc', '#page=-3', '#page=0']) {
    const bad = cardsView(SEVEN, {size: '3', fragment});
    assert.deepEqual([bad.el('view').value, bad.el('sort').value, bad.el('shown').textContent],
      ['cards', 'gain', '7 of 7 shown · page 1 of 3'], fragment);
    assert.equal(bad.location.hash, '', fragment);  // an address the page cannot show is rewritten to what it shows
  }
});

test('an address changed from outside (a link, Back) is shown', () => {
  const page = cardsView(SEVEN);
  page.location.hash = 'desc=1';
  page.flush();
  assert.deepEqual(names(page.html).slice(0, 2), ['c6', 'c0']);
  page.history.back();
  page.flush();
  assert.equal(page.el('desc').checked, false);
  assert.deepEqual(names(page.html).slice(0, 2), ['c2', 'c4']);
});

test('a grid cell opens its card as a new history entry, and Back returns to the grid', () => {
  const page = open({cards: [0, 1, 2].map(u => unit('L6', 0, u, u)), sort: 'final_activation', views: ['cards', 'grid']});
  page.clickCell('L6-U2');
  assert.deepEqual(page.entries, ['', 'view=cards&filter=l6-u2']);
  assert.deepEqual(names(page.html), ['L6-U2']);
  page.history.back();
  page.flush();
  assert.equal(page.el('view').value, 'grid');
  assert.ok(page.html.includes('class="cell"'));
  page.fire('cards', 'click', {target: {classList: {contains: () => false}, dataset: {name: 'L6-U1'}}});  // not a cell
  page.flush();
  assert.deepEqual(page.entries, ['', 'view=cards&filter=l6-u2']);
});

test('a card as drawn, whole: the least a card has, and one with media, more numbers and examples', () => {
  assert.equal(cardsView([card('p', {meta: 'm', rows: [['dataset max', 2]]})]).html,
    '<article class="card" data-name="p"><h2>p</h2>\n    <p class="meta">m</p>\n    \n    <table><tr><td title="dataset max">' +
    'dataset max</td><td>2</td></tr></table></article>');
  const examples = [{rank: 1, activation: 2, where: 'w', clip: 'e.wav', spectrogram: 'e.png'}, {where: 'v', clip: 'f.wav', spectrogram: 'f.png'}];
  assert.equal(cardsView([card('r', {meta: 'm', rows: [['dataset max', 2], ['gain', 3], ['loss', 4]], audio: 'a.wav',
    spectrogram: 's.png', waveform: [], examples, clip_seconds: 4})]).html,
  '<article class="card" data-name="r"><h2>r</h2>\n    <p class="meta">m</p>\n    \n    <audio controls preload="metadata" ' +
    'src="a.wav"></audio>\n    <img loading="lazy" src="s.png" alt="spectrogram of r"><table><tr><td title="dataset max">' +
    'dataset max</td><td>2</td></tr></table><details class="more"><summary>waveform, 2 more numbers</summary>\n    <div ' +
    'class="label">waveform</div><table><tr><td title="gain">gain</td><td>3</td></tr><tr><td title="loss">loss</td><td>4</td>' +
    '</tr></table></details><details class="natural"><summary>2 natural examples</summary>\n    <div class="examples"><div ' +
    'class="example"><b>#1</b> 2 · w\n    <audio controls preload="metadata" src="e.wav"></audio><img loading="lazy" ' +
    'src="e.png" alt="spectrogram">\n    </div><div class="example"><b>#–</b> – · v\n    <audio controls preload="metadata" ' +
    'src="f.wav"></audio><img loading="lazy" src="f.png" alt="spectrogram">\n    </div></div></details></article>');
});

test('marks sit at their time: a target frame, and the middle of a natural example', () => {
  const marked = cardsView([card('t', {audio: 'a.wav', waveform: [0, 1], trace: [1, 2], trace_offset: 0, trace_hop: 1,
    seconds: 2, mark: 1.5})]).html;
  assert.ok(marked.includes('<line x1="75" x2="75" y1="0" y2="32"/>'));
  const unmarked = cardsView([card('t', {audio: 'a.wav', waveform: [0, 1], trace: [1, 2], trace_offset: 0, trace_hop: 1,
    seconds: 2})]).html;
  assert.ok(unmarked.includes('audiation</div><svg viewBox="0 0 100 32" preserveAspectRatio="none"><polyline'));
  const example = cardsView([card('e', {examples: [{rank: 1, clip: 'c', spectrogram: 's', trace: [0, 1], trace_seconds: [0, 1]}],
    clip_seconds: 4})]).html;
  assert.ok(example.includes('<line x1="50" x2="50" y1="0" y2="32"/><polyline points="0.00,30.00 25.00,2.00"/>'));
});

test('sorting puts missing values last wherever they start, and keeps ties in their order', () => {
  for (const [gains, order] of [[[null, 1], ['c1', 'c0']], [[1, null], ['c0', 'c1']], [[null, 2, 1], ['c2', 'c1', 'c0']],
    [[2, null, 2, null, 2, null], ['c0', 'c2', 'c4', 'c1', 'c3', 'c5']], [[null, null, 1, 1], ['c2', 'c3', 'c0', 'c1']]]) {
    const cards = gains.map((gain, i) => card(`c${i}`, {keys: {gain}}));
    assert.deepEqual(names(cardsView(cards).html), order, JSON.stringify(gains));
    const page = cardsView(cards);
    page.input('desc', true);
    assert.deepEqual(names(page.html).slice(-gains.filter(g => g == null).length || gains.length),
      order.slice(-gains.filter(g => g == null).length || gains.length), 'desc ' + JSON.stringify(gains));
  }
});

test('each control redraws on its own: sort, size, view', () => {
  const page = cardsView(SEVEN, {sorts: ['gain', 'other']});
  page.input('sort', 'other');  // no card has it: the original order
  assert.deepEqual(names(page.html), ['c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6']);
  page.input('size', '2');
  assert.equal(page.el('shown').textContent, '7 of 7 shown · page 1 of 4');
  page.input('view', 'grid');
  assert.equal(page.el('cards').className, 'gridview');
  assert.equal(cardsView(SEVEN, {fragment: '#view=grid'}).el('cards').className, 'gridview');
  assert.equal(cardsView(SEVEN, {size: '3', fragment: '#page=9'}).el('shown').textContent, '7 of 7 shown · page 3 of 3');
});

test('one folder: a card per target even where two share a name; two folders: a card per folder in each row', () => {
  const one = cardsView([card('x', {meta: 'first'}), card('x', {meta: 'second'})]);
  assert.ok(one.html.includes('first') && one.html.includes('second') && !one.html.includes('class="row"'));
  const two = cardsView([card('x', {source: 0, meta: 'x in a'}), card('x', {source: 1, meta: 'x in b'}), card('y', {source: 1})],
    {sources: ['a', 'b']});
  const rows = two.html.split('<div class="row">').slice(1);
  assert.ok(rows[0].includes('x in a') && rows[0].includes('x in b'));
  assert.ok(rows[1].startsWith('<article class="card empty"><p class="meta">not in this run</p></article><article class="card" data-name="y"'));
  assert.ok(two.html.includes('</article></div><div class="row">'));
});

test('the grid: units in numeric order, cards without a unit left out, a cell without the value grey', () => {
  const cards = [10, 2, 1].map(u => unit('L6', 0, u, u + 100)).concat([card('L6-layer', {layer: 'L6', objective: 'channel',
    keys: {layer: 0, final_activation: 5}}), card('L8-U2', {layer: 'L8', objective: 'channel', keys: {layer: 2, unit: 2}})]);
  const html = open({cards}).html;
  assert.ok(html.includes('<tr><th>layer \\ unit</th><th>1</th><th>2</th><th>10</th></tr>'));
  assert.deepEqual([...html.matchAll(/<tr><th>([^<]*)<\/th>/g)].map(m => m[1]).slice(1), ['L6', 'L8']);
  assert.ok(html.includes('<tr><th>L8</th><td></td><td class="cell" style="background:#eee" data-name="L8-U2"'));
  assert.deepEqual(colours(open({cards: [10, 11, 12].map(u => unit('L6', 0, u, u))}).html),
    {'L6-U10': 'rgb(68,1,84)', 'L6-U11': 'rgb(33,145,140)', 'L6-U12': 'rgb(253,231,37)'});
  assert.ok(open({cards: [unit('L6', 0, 0, 1)], sort: 'unit'}).html.includes('colour: final_activation'));
});

test('the grid: rows of one layer rank in name order, whatever order the cards came in', () => {
  const html = open({cards: [unit('L6', 0, 0, 1, {objective: 'unit'}), unit('L6', 0, 1, 2), unit('L3', 0, 2, 3, {objective: 'unit'})]}).html;
  assert.deepEqual([...html.matchAll(/<tr><th>([^<]*)<\/th>/g)].map(m => m[1]).slice(1), ['L3 unit', 'L6 channel', 'L6 unit']);
});

test('the grid: 64 units are one line; past 64 lines of 64 with their ranges', () => {
  const row = n => open({cards: Array.from({length: n}, (_, u) => unit('L6', 0, u, u))}).html;
  assert.ok(row(64).includes('<th>layer \\ unit</th>'));
  const html = row(130);
  assert.deepEqual([...html.matchAll(/<tr><th>([^<]*)<\/th>/g)].map(m => m[1]).slice(1), ['L6 0–63', 'L6 64–127', 'L6 128–129']);
  const lines = html.split('<tr>').slice(1);
  assert.equal(count(lines[0], '<th>'), 65);  // the corner and 64 columns
  assert.deepEqual([count(lines[1], 'class="cell'), count(lines[2], 'class="cell'), count(lines[3], 'class="cell')], [64, 64, 2]);
  assert.ok(lines[3].includes('data-name="L6-U128"') && lines[3].includes('data-name="L6-U129"'));
});

test("the grid: far outliers are those beyond 3 interquartile ranges of the quartiles, and only from 50 values", () => {
  // 58 values 1000..1057 and two more: the quartiles are ranks 15 and 44 of the 60 sorted values
  const values = Array.from({length: 58}, (_, i) => 1000 + i);
  const quartiles = extra => { const all = values.concat(extra), sorted = [...all].sort((a, b) => a - b);
    const q1 = sorted[Math.round(.25 * 59)], q3 = sorted[Math.round(.75 * 59)]; return {all, q1, q3, fence: 3 * (q3 - q1)}; };
  // one value below the rest and one above: the quartiles are the same whatever their size
  let {all, q1, q3, fence} = quartiles([0, 5000]);
  const high = q3 + fence, low = q1 - fence;
  ({all} = quartiles([high, low]));
  const outlined = vs => { const html = open({cards: vs.map((v, u) => unit('L6', 0, u, v)).concat(
    [card('L6-U99', {layer: 'L6', objective: 'channel', keys: {layer: 0, unit: 99}})])}).html;
    return [[...html.matchAll(/class="cell outlier"[^>]*data-name="([^"]+)"/g)].map(m => m[1]), html]; };
  let [names_, html] = outlined(all);
  assert.deepEqual(names_, []);  // at either fence: inside
  [names_, html] = outlined(values.concat([high + 1, low - 1]));
  assert.deepEqual(names_, ['L6-U58', 'L6-U59']);
  assert.ok(html.includes(`: final_activation ${high + 1} (a far outlier)"`) && html.includes('2 far outlier(s)'));
  assert.ok(!html.includes('L6-U99" title="L6-U99: final_activation – (a far outlier)'));
  // a high value inside the fence of 3 x (q3 - q1) though far from the rest
  [names_] = outlined(values.concat([1000, high - 1]));
  assert.deepEqual(names_, []);
  // below 50 values nothing is outlined, however far
  assert.ok(!open({cards: [1, 2, 3, 1e9].map((v, u) => unit('L6', 0, u, v))}).html.includes('outlier"'));
});

test('rows follow one another: two core numbers, two grid rows', () => {
  const core = cardsView([card('c', {rows: [['activation before → after', 'a'], ['dataset max', 2]]})]).html;
  assert.ok(core.includes('<table><tr><td title="activation before → after">activation before → after</td><td>a</td></tr>' +
    '<tr><td title="dataset max">dataset max</td><td>2</td></tr></table>'));
  const grid = open({cards: [unit('L6', 0, 0, 1), unit('L7', 1, 0, 2)]}).html;
  assert.ok(grid.includes('title="L6-U0: final_activation 1"></td></tr><tr><th>L7</th>'));
});

test('a layer whose cards have no unit has no grid row; a higher-is-better field is bright at its highest', () => {
  const html = open({cards: [unit('L6', 0, 0, 1), card('L9-layer', {layer: 'L9', objective: 'channel', keys: {layer: 3, final_activation: 2}})]}).html;
  assert.deepEqual([...html.matchAll(/<tr><th>([^<]*)<\/th>/g)].map(m => m[1]).slice(1), ['L6']);
  const fields = {final_activation: {label: 'final', meaning: 'm', better: 'higher'}};
  assert.deepEqual(colours(open({cards: [0, 1].map(u => unit('L6', 0, u, u)), fields}).html),
    {'L6-U0': 'rgb(68,1,84)', 'L6-U1': 'rgb(253,231,37)'});
});

test('sorting a long list (past the sort\'s insertion runs) keeps ties and missing values in their order', () => {
  const cards = Array.from({length: 80}, (_, i) => card(`c${i}`, {keys: {gain: i % 3 === 0 ? null : i % 2}}));
  const want = [0, 1, null].flatMap(g => cards.filter(c => c.keys.gain === g).map(c => c.name));
  assert.deepEqual(names(cardsView(cards, {size: '100'}).html), want);
  const page = cardsView(cards, {size: '100'});
  page.input('desc', true);
  assert.deepEqual(names(page.html), [1, 0, null].flatMap(g => cards.filter(c => c.keys.gain === g).map(c => c.name)));
});
