// Runs audiation/browser/static/page.js on a page's data (tests/js/harness.js: a stub document and history),
// opened at `#fragment` (optional), then `drive` (optional: a script, as a user's clicks, that may call
// `fire(id, type, event)` and `history.back()`); prints {cards: the cards' HTML, hash: the address's fragment,
// entries: the history}.
const fs = require('fs');
const {open} = require('./js/harness');
const [pagejs, data, sources, fields, key, fragment = '', drive = ''] = process.argv.slice(2);
process.env.PAGE_JS = pagejs;
const read = file => JSON.parse(fs.readFileSync(file, 'utf8'));
const page = open({cards: read(data), sources: read(sources), fields: read(fields), sort: key, fragment});
new Function('fire', 'history', drive)(page.fire, page.history);
page.flush();
process.stdout.write(JSON.stringify({cards: page.html, hash: page.location.hash, entries: page.entries}));
