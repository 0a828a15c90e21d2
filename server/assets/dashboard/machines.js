// The machines page: each pool's size, machines by state and queued agents (`/v1/pools`),
// and every machine with its state and the agent it holds (`/v1/machines`). The store tells
// of no machine changes, so the page reads them when opened and when asked to.

import { api, badge, el, fill, report } from './common.js';

const main = document.getElementById('main');

/** Machine states in the colours of agents': busy runs, idle and sleeping wait, lost failed. */
function machineTone(state) {
  if (state === 'busy') return 'running';
  if (state === 'lost') return 'failed';
  if (state === 'terminated') return 'completed';
  return 'idle';
}

function machineBadge(state) {
  const shown = badge(machineTone(state));
  shown.lastChild.textContent = state;
  return shown;
}

function pools(list) {
  return el('table', { class: 'list', id: 'pools' },
    el('thead', {}, el('tr', {}, ['Pool', 'Placement', 'Max machines', 'Warm', 'Machines', 'Queued agents'].map((h) => el('th', {}, h)))),
    el('tbody', {}, list.map((p) => el('tr', { 'data-pool': p.pool },
      el('td', {}, p.pool),
      el('td', {}, p.placement),
      el('td', { class: 'num' }, p.max_vms),
      el('td', { class: 'num' }, p.min_idle),
      el('td', {}, Object.entries(p.machines).filter(([, n]) => n > 0).map(([s, n]) => el('span', { class: 'count' }, machineBadge(s), ` ${n} `)),
        Object.values(p.machines).every((n) => n === 0) ? el('span', { class: 'muted' }, 'none') : null),
      el('td', { class: 'num' }, p.queued_agents)))));
}

function agentLink(agent) {
  if (!agent) return el('span', { class: 'muted' }, '—');
  const [run] = agent.split('/');
  return el('a', { href: `/runs/${encodeURIComponent(run)}` }, agent);
}

function machines(list) {
  if (list.length === 0) return el('p', { class: 'muted', id: 'machines' }, 'No machines: agents of the local pool run in this server’s own slots.');
  return el('table', { class: 'list', id: 'machines' },
    el('thead', {}, el('tr', {}, ['Machine', 'Pool', 'Placement', 'Provider id', 'State', 'Agent', 'Last seen'].map((h) => el('th', {}, h)))),
    el('tbody', {}, list.map((m) => el('tr', { 'data-machine': m.id, 'data-state': m.state },
      el('td', {}, el('code', {}, m.id)),
      el('td', {}, m.pool),
      el('td', {}, m.placement),
      el('td', {}, m.provider_id ?? '—'),
      el('td', {}, machineBadge(m.state)),
      el('td', {}, agentLink(m.agent)),
      el('td', {}, m.last_seen_at ?? '—')))));
}

async function load() {
  try {
    const [poolList, machineList] = await Promise.all([api('/v1/pools'), api('/v1/machines')]);
    fill(main, el('div', { id: 'messages' }),
      el('div', { class: 'heading' }, el('h1', {}, 'Machines'),
        el('div', { class: 'buttons' }, el('button', { id: 'refresh', onclick: load }, 'Read again'))),
      el('h2', {}, 'Pools'), pools(poolList),
      el('h2', {}, 'Machines'), machines(machineList));
  } catch (error) { report(error); }
}

load();
