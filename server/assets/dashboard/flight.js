// One flight: its diagnostics, graph, generations and text, and a form built from its
// `inputs` that starts a run (`POST /v1/flights/{name}/runs`) and opens the run's page.

import { api, el, fill, report, subject } from './common.js';
import { draw } from './graph.js';

const main = document.getElementById('main');
const name = subject;
const asked = new URLSearchParams(location.search).get('generation');

function diagnostics(list) {
  if (list.length === 0) return el('p', { class: 'muted', id: 'diagnostics' }, 'No problems found.');
  return el('ul', { class: 'diagnostics', id: 'diagnostics' }, list.map((d) => el('li', { class: d.severity },
    el('span', { class: `badge ${d.severity === 'error' ? 'red' : 'yellow'}` }, d.severity),
    ` ${d.line}:${d.column} `, el('code', {}, d.code), ` ${d.message}`,
    d.help ? el('div', { class: 'muted' }, d.help) : null)));
}

function generations(flight) {
  if (!flight.generations.length) return null;
  return el('section', {}, el('h2', {}, 'Generations'),
    el('ul', { class: 'generations', id: 'generations' }, flight.generations.map((g) => el('li', {},
      g.generation === flight.generation ? el('strong', {}, `#${g.generation}`)
        : el('a', { href: `/flights/${encodeURIComponent(name)}?generation=${g.generation}` }, `#${g.generation}`),
      ` by ${g.author}, ${g.created_at}`))));
}

function startForm(flight) {
  if (!flight.valid) return el('p', { class: 'muted' }, 'Fix the errors above to run this flight.');
  const fields = flight.inputs.map((input) => {
    const id = `input-${input.name}`;
    return el('div', { class: 'field' },
      el('label', { for: id }, input.name, input.required ? ' (required)' : ''),
      el('input', { id, name: input.name, value: input.default ?? '', required: input.required && input.default == null }),
      input.description ? el('div', { class: 'muted' }, input.description) : null);
  });
  const latest = !flight.generations.length || flight.generations[0].generation === flight.generation;
  const form = el('form', { id: 'start', class: 'start' }, fields.length ? fields : el('p', { class: 'muted' }, 'This flight takes no inputs.'),
    latest ? null : el('p', { class: 'muted' }, 'A run starts from the latest generation.'),
    el('button', { type: 'submit', class: 'primary', id: 'start-run' }, 'Start run'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const inputs = {};
    for (const input of flight.inputs) inputs[input.name] = form.elements.namedItem(input.name).value;
    try {
      const started = await api(`/v1/flights/${encodeURIComponent(name)}/runs`, { method: 'POST', body: { inputs } });
      location.assign(`/runs/${encodeURIComponent(started.run_id)}`);
    } catch (error) { report(error); }
  });
  return el('section', {}, el('h2', {}, 'Start a run'), form);
}

async function start() {
  try {
    const query = asked ? `?generation=${encodeURIComponent(asked)}` : '';
    const flight = await api(`/ui/flights/${encodeURIComponent(name)}${query}`);
    const graph = el('div', { class: 'graph', id: 'graph' });
    fill(main, el('div', { id: 'messages' }),
      el('div', { class: 'heading' }, el('h1', {}, flight.title), el('code', {}, flight.name),
        el('span', { class: 'muted' }, flight.origin === 'catalog' ? `catalog, generation ${flight.generation}` : 'repository file'),
        el('a', { href: `/?flight=${encodeURIComponent(name)}` }, 'its runs')),
      flight.shadows_file ? el('p', { class: 'muted' }, `The catalog flight hides the repository file .murmur/flights/${name}.md.`) : null,
      el('section', {}, el('h2', {}, 'Checks'), diagnostics(flight.diagnostics)),
      startForm(flight),
      el('section', {}, el('h2', {}, 'Graph'), graph, el('pre', { class: 'graph-text', id: 'graph-text' }, flight.graph_text)),
      generations(flight),
      el('section', {}, el('h2', {}, 'Text'), el('pre', { class: 'markdown', id: 'markdown' }, flight.markdown)));
    if (flight.graph.length) draw(graph, { nodes: flight.graph });
  } catch (error) { report(error); }
}

start();
