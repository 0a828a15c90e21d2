// The flights page: the catalog's flights and the repository's files, valid or not, each
// with what validation found.

import { api, el, fill, report } from './common.js';

const main = document.getElementById('main');

function validity(flight) {
  if (!flight.valid) return el('span', { class: 'badge red' }, `${flight.errors} error${flight.errors === 1 ? '' : 's'}`);
  if (flight.warnings) return el('span', { class: 'badge yellow' }, `${flight.warnings} warning${flight.warnings === 1 ? '' : 's'}`);
  return el('span', { class: 'badge gray' }, 'valid');
}

async function start() {
  const body = el('tbody', { id: 'flights' });
  fill(main, el('div', { id: 'messages' }), el('div', { class: 'heading' }, el('h1', {}, 'Flights')),
    el('table', { class: 'list' },
      el('thead', {}, el('tr', {}, ['Flight', 'Title', 'From', 'Generation', 'Agents', 'Checks'].map((h) => el('th', {}, h)))),
      body));
  try {
    const flights = await api('/ui/flights');
    if (flights.length === 0) {
      fill(body, el('tr', {}, el('td', { colspan: 6, class: 'muted' }, 'No flights: add .murmur/flights/NAME.md or `murmur set flight NAME`.')));
      return;
    }
    fill(body, flights.map((f) => el('tr', { 'data-flight': f.name },
      el('td', {}, el('a', { href: `/flights/${encodeURIComponent(f.name)}` }, f.name)),
      el('td', {}, f.title),
      el('td', {}, f.origin),
      el('td', { class: 'num' }, f.generation ?? '—'),
      el('td', { class: 'num' }, f.agents),
      el('td', {}, validity(f)))));
  } catch (error) { report(error); }
}

start();
