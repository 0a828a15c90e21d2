// The runs page: newest first, filtered by flight and status, kept current by the live
// list stream (`/ui/runs/live`): new runs and changed states appear without a reload.

import { api, age, badge, cost, el, fill, report, span } from './common.js';
import { LiveStream } from './sse.js';

const STATUSES = ['queued', 'running', 'completed', 'failed', 'canceled', 'interrupted'];
const main = document.getElementById('main');
const params = new URLSearchParams(location.search);
let stream = null;
let runs = [];

const flightSelect = el('select', { id: 'flight-filter', name: 'flight', onchange: changed }, el('option', { value: '' }, 'every flight'));
const statusSelect = el('select', { id: 'status-filter', name: 'status', onchange: changed }, el('option', { value: '' }, 'every status'),
  STATUSES.map((s) => el('option', { value: s }, s)));
const live = el('span', { id: 'live', class: 'muted' }, 'connecting…');
const body = el('tbody', { id: 'runs' });

function changed() {
  const query = new URLSearchParams();
  if (flightSelect.value) query.set('flight', flightSelect.value);
  if (statusSelect.value) query.set('status', statusSelect.value);
  history.replaceState(null, '', query.size ? `/?${query}` : '/');
  listen(query);
}

function row(run) {
  return el('tr', { 'data-run': run.id, 'data-status': run.status },
    el('td', {}, badge(run.status)),
    el('td', {}, el('a', { href: `/runs/${encodeURIComponent(run.id)}` }, run.id)),
    el('td', {}, run.flight),
    el('td', { class: 'age', 'data-at': run.created_at }, age(run.created_at)),
    el('td', { class: 'took' }, span(run.created_at, run.finished_at)),
    el('td', { class: 'num' }, cost(run.cost_usd)));
}

function render() {
  if (runs.length === 0) {
    const filtered = flightSelect.value || statusSelect.value;
    const note = filtered ? 'No runs match these filters.' : 'No runs yet. Start one from a flight.';
    fill(body, el('tr', {}, el('td', { colspan: 6, class: 'muted' }, note)));
    return;
  }
  fill(body, runs.map(row));
}

// Ages and running durations move on by themselves; this redraws text only, asks nothing.
function tick() {
  for (const tr of body.querySelectorAll('tr[data-run]')) {
    const run = runs.find((r) => r.id === tr.dataset.run);
    if (!run) continue;
    tr.querySelector('.age').textContent = age(run.created_at);
    tr.querySelector('.took').textContent = span(run.created_at, run.finished_at);
  }
}

function listen(query) {
  stream?.stop();
  stream = new LiveStream(`/ui/runs/live?${query}`, {
    onEvent: (type, data) => {
      if (type !== 'runs') return;
      runs = JSON.parse(data).runs;
      for (const run of runs) addFlight(run.flight);
      render();
    },
    // The list never ends by itself; a closed stream is a dropped one.
    onEnd: () => true,
    onState: (state) => { live.textContent = state === 'live' ? '● live' : state; live.className = state === 'live' ? 'live' : 'muted'; },
  });
  stream.start();
}

function addFlight(name) {
  if ([...flightSelect.options].some((o) => o.value === name)) return;
  flightSelect.append(el('option', { value: name }, name));
}

async function start() {
  fill(main,
    el('div', { id: 'messages' }),
    el('div', { class: 'heading' }, el('h1', {}, 'Runs'), live),
    el('div', { class: 'filters' }, el('label', {}, 'Flight ', flightSelect), el('label', {}, 'Status ', statusSelect)),
    el('table', { class: 'list' },
      el('thead', {}, el('tr', {}, ['Status', 'Run', 'Flight', 'Started', 'Duration', 'Cost'].map((h) => el('th', {}, h)))),
      body));
  try {
    for (const flight of await api('/v1/flights')) addFlight(flight.name);
  } catch (error) { report(error); }
  if (params.get('flight')) { addFlight(params.get('flight')); flightSelect.value = params.get('flight'); }
  if (STATUSES.includes(params.get('status'))) statusSelect.value = params.get('status');
  changed();
  setInterval(tick, 1000);
}

start();
