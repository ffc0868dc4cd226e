// Runs audiation/browser/static/page.js on a page's data with a stub document and a stub session history,
// opened at `#fragment` (optional), then `drive` (optional: a script, as a user's clicks, that may call
// `fire(id, type, event)`); prints {cards: the cards' HTML, hash: the address's fragment, entries: the history}.
const fs = require('fs');
const [pagejs, data, sources, fields, key, fragment = '', drive = ''] = process.argv.slice(2);
const els = {}, listeners = {};
const on = id => (type, f) => { (listeners[`${id} ${type}`] ||= []).push(f); };
const fire = (id, type, event = {}) => (listeners[`${id} ${type}`] || []).forEach(f => f(event));
const el = id => els[id] || (els[id] = {id, value: '', checked: false, innerHTML: '', textContent: '', className: '',
  disabled: false, addEventListener: on(id)});
el('data').textContent = fs.readFileSync(data, 'utf8');
el('sources').textContent = fs.readFileSync(sources, 'utf8');
el('fields').textContent = fs.readFileSync(fields, 'utf8');
el('view').value = 'grid'; el('sort').value = key; el('size').value = '24';
global.document = {getElementById: el, addEventListener: on('document')};
global.window = {addEventListener: on('window')};
// As a browser's: setting the fragment adds a history entry, replace() rewrites the current one, and each
// change (back() too) is announced by a hashchange event after the running script.
const entries = [fragment.replace(/^#/, '')];
let at = 0;
const changed = () => setTimeout(() => fire('window', 'hashchange'), 0);
global.location = {
  get hash() { return entries[at] ? '#' + entries[at] : ''; },
  set hash(value) { value = String(value).replace(/^#/, ''); if (value !== entries[at]) { entries.splice(++at, Infinity, value); changed(); } },
  replace(url) { const value = url.replace(/^#/, ''); if (value !== entries[at]) { entries[at] = value; changed(); } },
};
global.history = {back() { if (at > 0) { at--; changed(); } }};
eval(fs.readFileSync(pagejs, 'utf8'));
eval(drive);
setTimeout(() => process.stdout.write(JSON.stringify({cards: el('cards').innerHTML, hash: location.hash, entries})), 20);
