// The run page: the DAG coloured by state, the chosen agent's panel and live log, and the
// run's actions. The run's SSE stream (from the last event the page has seen, resumed with
// `Last-Event-ID`) drives every update: output lines go to the log, and any other event
// refreshes the run's state, at most one refresh in flight at a time.

import { api, badge, cost, el, fill, report, span, subject, terminal } from './common.js';
import { draw, group } from './graph.js';
import { AgentPanel } from './agent.js';
import { LiveStream } from './sse.js';

const main = document.getElementById('main');
const id = subject;
let page = null;
let byName = new Map();
let selected = '';
let stream = null;
let refreshing = null;
let again = false;
let regraph = false;
let ended = false;
let instanceFilter = '';
let drawn = '';

const header = el('div', { class: 'heading' });
const graph = el('div', { class: 'graph', id: 'graph' });
const side = el('aside', { class: 'panel', id: 'panel' }, el('p', { class: 'muted' }, 'Choose an agent to see what it did and its log.'));
const live = el('span', { id: 'live', class: 'muted' });
const panel = new AgentPanel(side, id, { onActed: () => { refresh(); resume(); } });

async function load() {
  page = await api(`/ui/runs/${encodeURIComponent(id)}`);
  byName = new Map(page.run.agents.map((a) => [a.slug, a]));
}

/** Reads the run again (its graph too when `withGraph`), then redraws. */
async function refresh(withGraph = false) {
  regraph ||= withGraph;
  if (refreshing) { again = true; return; }
  refreshing = (async () => {
    do {
      again = false;
      const full = regraph;
      regraph = false;
      try {
        if (full) await load();
        else {
          const run = await api(`/v1/runs/${encodeURIComponent(id)}`);
          page.run = run;
          byName = new Map(run.agents.map((a) => [a.slug, a]));
        }
        render();
      } catch (error) { report(error); }
    } while (again);
    refreshing = null;
  })();
}

function render() {
  const run = page.run;
  const actions = el('div', { class: 'buttons' });
  if (!terminal(run.status)) actions.append(el('button', { id: 'cancel', class: 'danger', onclick: act('cancel') }, 'Cancel run'));
  if (run.status === 'failed' || run.status === 'canceled') actions.append(el('button', { id: 'retry', onclick: act('retry') }, 'Retry run'));
  const totals = run.agents.map((a) => a.cost_usd).filter((c) => typeof c === 'number');
  fill(header,
    el('h1', {}, 'Run ', el('code', {}, run.id)),
    el('span', { id: 'run-status', 'data-status': run.status }, badge(run.status)),
    live,
    el('span', { class: 'muted' }, 'flight ', el('a', { href: `/flights/${encodeURIComponent(run.flight)}` }, run.flight)),
    el('span', { class: 'muted' }, `took ${span(run.created_at, run.finished_at)}`),
    el('span', { class: 'muted' }, `cost ${cost(totals.length ? totals.reduce((a, b) => a + b, 0) : null)}`),
    actions);
  const states = new Map(run.agents.map((a) => [a.slug, a.state]));
  const nodes = page.graph.length ? page.graph : run.agents.map((a) => ({ slug: a.slug, needs: [], continues: null, gates: [], template: null }));
  // Redrawn only when something shown changed: a node replaced under the pointer loses a click.
  const key = JSON.stringify([selected, [...states], nodes.map((n) => [n.slug, n.awaiting_approval])]);
  if (key !== drawn) draw(graph, { nodes, states, selected, onSelect: choose });
  drawn = key;
  showSelected();
}

function showSelected() {
  if (!selected) return;
  const node = page.graph.find((n) => n.slug === selected);
  const members = group(page.graph).instances.get(selected);
  if (members?.length) { templatePanel(node, members); return; }
  const view = byName.get(selected);
  if (view) panel.show(view, node);
}

/** A fan-out template: counts by state, and its instances to choose from. */
function templatePanel(node, members) {
  panel.slug = '';
  const filter = el('select', { id: 'instance-filter' }, el('option', { value: '' }, 'every state'));
  const byState = new Map();
  for (const m of members) { const s = byName.get(m.slug)?.state ?? 'pending'; byState.set(s, (byState.get(s) ?? 0) + 1); }
  for (const [s, n] of byState) filter.append(el('option', { value: s }, `${s} (${n})`));
  const list = el('ul', { class: 'instances', id: 'instances' });
  const shown = () => {
    const picked = members.filter((m) => !filter.value || (byName.get(m.slug)?.state ?? 'pending') === filter.value);
    fill(list, picked.slice(0, 500).map((m) => el('li', {}, el('button', { class: 'link', onclick: () => choose(m.slug) },
      badge(byName.get(m.slug)?.state ?? 'pending'), ` ${m.slug}`))),
    picked.length > 500 ? el('li', { class: 'muted' }, `and ${picked.length - 500} more`) : null);
  };
  filter.value = [...byState.keys()].includes(instanceFilter) ? instanceFilter : '';
  filter.addEventListener('change', () => { instanceFilter = filter.value; shown(); });
  shown();
  const own = byName.get(node.slug);
  fill(side, el('h2', {}, node.slug), el('p', {}, `${members.length} instances (each: ${node.each ?? ''})`),
    own ? el('p', {}, 'Template ', badge(own.state)) : null, el('label', {}, 'Show ', filter), list);
}

function choose(slug) {
  selected = slug;
  render();
}

function act(what) {
  return async () => {
    try {
      await api(`/v1/runs/${encodeURIComponent(id)}/${what}`, { method: 'POST' });
      refresh();
      resume();
    } catch (error) { report(error); }
  };
}

function onEvent(type, data, seq) {
  let entry;
  try { entry = JSON.parse(data); } catch { return; }
  if (type === 'agent_output') { panel.output(Number(seq), entry.event); return; }
  if (['run_completed', 'run_failed', 'run_canceled'].includes(type)) ended = true;
  if (type === 'run_retried' || type === 'run_reopened') ended = false;
  const event = entry.event ?? {};
  for (const node of page.graph) {
    if (node.slug !== event.slug) continue;
    if (type === 'gate_opened') node.awaiting_approval = event.gate === 'approve';
    if (['gate_passed', 'gate_failed', 'agent_started', 'agent_canceled'].includes(type)) node.awaiting_approval = false;
  }
  refresh(type === 'agent_expanded' || type === 'run_retried' || type === 'run_reopened');
}

/** Listens again after an act that makes an ended run run on (a retry, a follow-up). */
function resume() {
  ended = false;
  stream.start();
}

async function start() {
  fill(main, el('div', { id: 'messages' }), header, el('div', { class: 'run-layout' }, graph, side));
  try {
    await load();
  } catch (error) { report(error); return; }
  ended = terminal(page.run.status);
  render();
  stream = new LiveStream(`/v1/runs/${encodeURIComponent(id)}/events`, {
    after: page.seq,
    onEvent,
    // The server ends the stream when the run has ended; a stream that ended early is
    // one that dropped.
    onEnd: () => { refresh(); return !ended; },
    onState: (state) => {
      live.textContent = state === 'live' ? '● live' : state;
      live.className = state === 'live' ? 'live' : 'muted';
      live.dataset.reconnects = String(stream.reconnects ?? 0);
    },
  });
  stream.start();
}

start();
