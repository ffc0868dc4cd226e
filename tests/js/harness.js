// Runs audiation/browser/static/page.js (or $PAGE_JS: a mutant's copy) in a fresh context with a stub document
// and a stub session history, as a browser would: setting the fragment adds a history entry, replace() rewrites
// the current one, each change (back() too) is announced by a hashchange event after the running script, and a
// <select> keeps only a value it offers. `flush()` delivers the pending events, so a test needs no waiting.
const fs = require('fs');
const path = require('path');
const vm = require('vm');

const PAGE = path.join(__dirname, '..', '..', 'audiation', 'browser', 'static', 'page.js');

function open({cards = [], sources = ['job'], fields = {}, view = 'grid', sort = 'final_activation', size = '24',
               views = ['cards', 'grid'], sorts = null, fragment = ''} = {}) {
  const els = {}, listeners = {}, pending = [];
  const on = id => (type, f) => { (listeners[`${id} ${type}`] ||= []).push(f); };
  const fire = (id, type, event = {}) => (listeners[`${id} ${type}`] || []).forEach(f => f(event));
  const el = id => els[id] || (els[id] = {id, value: '', checked: false, innerHTML: '', textContent: '', className: '',
    disabled: false, dataset: {}, addEventListener: on(id)});
  const select = (id, offered, value) => {
    let chosen = value;
    els[id] = {...el(id), get value() { return chosen; }, set value(v) { chosen = offered.includes(v) ? v : ''; }};
  };
  select('view', views, view);
  select('sort', sorts || [sort, 'layer', 'unit', 'final_activation', 'initial_activation', 'gain'], sort);
  el('size').value = size;
  el('data').textContent = JSON.stringify(cards);
  el('sources').textContent = JSON.stringify(sources);
  el('fields').textContent = JSON.stringify(fields);
  const entries = [fragment.replace(/^#/, '')];
  let at = 0;
  const changed = () => pending.push(() => fire('window', 'hashchange'));
  const location = {
    get hash() { return entries[at] ? '#' + entries[at] : ''; },
    set hash(value) { value = String(value).replace(/^#/, ''); if (value !== entries[at]) { entries.splice(++at, Infinity, value); changed(); } },
    replace(url) {  // only a '#fragment' stays on the page; anything else would load another address
      if (!String(url).startsWith('#')) throw new Error(`location.replace(${url}) leaves the page`);
      const value = url.slice(1); if (value !== entries[at]) { entries[at] = value; changed(); }
    },
  };
  const history = {back() { if (at > 0) { at--; changed(); } }};
  const document = {getElementById: el, addEventListener: on('document')};
  const context = {document, window: {addEventListener: on('window')}, location, history, URLSearchParams,
    setTimeout: f => pending.push(f),
    // `make mutants-js`: Stryker's instrumented page reads which mutant is active from process.env
    process: {env: {__STRYKER_ACTIVE_MUTANT__: process.env.__STRYKER_ACTIVE_MUTANT__}}};
  const file = process.env.PAGE_JS || PAGE;
  vm.runInNewContext(fs.readFileSync(file, 'utf8'), context, {filename: file});
  const flush = () => { while (pending.length) pending.shift()(); };
  flush();
  return {
    el, fire, location, history, entries, flush,
    get html() { return el('cards').innerHTML; },
    input(id, value) { if (typeof value === 'boolean') el(id).checked = value; else el(id).value = value; fire(id, 'input'); flush(); },
    click(id) { fire(id, 'click'); flush(); },
    clickCell(name) {
      fire('cards', 'click', {target: {classList: {contains: c => c === 'cell'}, dataset: {name}}}); flush();
    },
  };
}

module.exports = {open, PAGE};
