// Runs audiation/browser/static/page.js on a page's data with a stub document; prints the grid's HTML.
const fs = require('fs');
const [pagejs, data, sources, fields, key] = process.argv.slice(2);
const els = {};
const el = id => els[id] || (els[id] = {id, value: '', checked: false, innerHTML: '', textContent: '', className: '',
  disabled: false, addEventListener() {}});
el('data').textContent = fs.readFileSync(data, 'utf8');
el('sources').textContent = fs.readFileSync(sources, 'utf8');
el('fields').textContent = fs.readFileSync(fields, 'utf8');
el('view').value = 'grid'; el('sort').value = key; el('size').value = '24';
global.document = {getElementById: el};
eval(fs.readFileSync(pagejs, 'utf8'));
process.stdout.write(el('cards').innerHTML);
