// The DAG as SVG: agents in layers from left to right (an agent one layer right of its
// furthest upstream), `needs` edges solid and `continues` edges dashed, nodes coloured by
// state. Fan-out instances are drawn inside their template's node as counts and a bar, so
// a thousand instances are one node; the page lists them when the node is chosen.

import { tone } from './common.js';

const SVG = 'http://www.w3.org/2000/svg';
const W = 200;
const H = 60;
const X_GAP = 70;
const Y_GAP = 18;
const PAD = 16;
const TONES = ['green', 'yellow', 'red', 'gray', 'none'];

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Top-level nodes (templates included) and each template's instances. */
export function group(nodes) {
  const top = [];
  const instances = new Map();
  for (const node of nodes) {
    if (node.template) {
      if (!instances.has(node.template)) instances.set(node.template, []);
      instances.get(node.template).push(node);
    } else {
      top.push(node);
    }
  }
  return { top, instances };
}

function upstreams(node, known) {
  return [...node.needs, ...(node.continues ? [node.continues] : [])].filter((s) => known.has(s));
}

/** Each node's layer and row. */
function layout(top) {
  const bySlug = new Map(top.map((n) => [n.slug, n]));
  const layer = new Map();
  const depth = (slug, seen = new Set()) => {
    if (layer.has(slug)) return layer.get(slug);
    if (seen.has(slug)) return 0;
    seen.add(slug);
    const ups = upstreams(bySlug.get(slug), bySlug);
    const d = ups.length === 0 ? 0 : 1 + Math.max(...ups.map((u) => depth(u, seen)));
    layer.set(slug, d);
    return d;
  };
  top.forEach((n) => depth(n.slug));
  const layers = [];
  top.forEach((n) => (layers[layer.get(n.slug)] ??= []).push(n.slug));
  const row = new Map();
  layers.forEach((slugs) => {
    // One barycentre pass: an agent sits near the rows of its upstreams.
    const weight = (slug) => {
      const ups = upstreams(bySlug.get(slug), bySlug).map((u) => row.get(u) ?? 0);
      return ups.length ? ups.reduce((a, b) => a + b, 0) / ups.length : -1;
    };
    const order = slugs.map((slug, i) => ({ slug, key: weight(slug), i }));
    order.sort((a, b) => a.key - b.key || a.i - b.i);
    order.forEach(({ slug }, i) => row.set(slug, i));
  });
  return { layer, row, layers: layers.length, rows: Math.max(1, ...layers.map((l) => l.length)) };
}

function counts(instances, states) {
  const byTone = Object.fromEntries(TONES.map((t) => [t, 0]));
  const byState = new Map();
  for (const node of instances) {
    const state = states.get(node.slug) ?? 'pending';
    byTone[tone(state)] += 1;
    byState.set(state, (byState.get(state) ?? 0) + 1);
  }
  return { byTone, byState };
}

function summary(instances, byState) {
  const parts = [...byState.entries()].sort((a, b) => b[1] - a[1]).map(([s, n]) => `${n} ${s}`);
  return `${instances.length} × · ${parts.slice(0, 3).join(' · ')}`;
}

function label(slug) {
  return slug.length > 24 ? `${slug.slice(0, 23)}…` : slug;
}

/**
 * Draws the graph into `host`.
 * @param {{nodes: object[], states: Map<string,string>, selected?: string,
 *          onSelect?: (slug: string) => void}} options
 */
export function draw(host, { nodes, states = new Map(), selected = '', onSelect = () => {} }) {
  const { top, instances } = group(nodes);
  const { layer, row, layers, rows } = layout(top);
  const width = PAD * 2 + layers * W + Math.max(0, layers - 1) * X_GAP;
  const height = PAD * 2 + rows * H + (rows - 1) * Y_GAP;
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, class: 'dag', role: 'img' });
  root.append(svg('title', {}, 'The run’s agents and what each waits for'));
  const defs = svg('defs');
  const marker = svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
  marker.append(svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrow' }));
  defs.append(marker);
  root.append(defs);
  const at = (slug) => ({ x: PAD + layer.get(slug) * (W + X_GAP), y: PAD + row.get(slug) * (H + Y_GAP) });
  const known = new Set(top.map((n) => n.slug));
  for (const node of top) {
    const to = at(node.slug);
    for (const up of upstreams(node, known)) {
      const from = at(up);
      const [x1, y1, x2, y2] = [from.x + W, from.y + H / 2, to.x, to.y + H / 2];
      const kind = up === node.continues ? 'continues' : 'needs';
      root.append(svg('path', { d: `M ${x1} ${y1} C ${x1 + 35} ${y1}, ${x2 - 35} ${y2}, ${x2} ${y2}`, class: `edge ${kind}`, 'marker-end': 'url(#arrow)', 'data-edge': `${up}->${node.slug}` }));
    }
  }
  for (const node of top) root.append(nodeOf(node, at(node.slug), instances.get(node.slug), states, selected, onSelect));
  host.replaceChildren(root);
}

function nodeOf(node, { x, y }, members, states, selected, onSelect) {
  const state = states.get(node.slug) ?? (states.size ? 'pending' : '');
  const classes = ['node', `tone-${state ? tone(state) : 'none'}`];
  if (node.slug === selected) classes.push('selected');
  if (node.awaiting_approval) classes.push('approval');
  const g = svg('g', { class: classes.join(' '), transform: `translate(${x} ${y})`, tabindex: 0, role: 'button', 'data-slug': node.slug, 'data-state': state });
  g.append(svg('title', {}, node.slug));
  g.append(svg('rect', { width: W, height: H, rx: 8 }));
  g.append(svg('text', { x: 12, y: 22, class: 'slug' }, label(node.slug)));
  let detail = state || (node.each ? `each: ${node.each}` : 'agent');
  if (node.gates.length) detail += ` · ${node.gates.join(', ')}`;
  if (node.awaiting_approval) detail = 'waits for approval';
  if (members?.length) {
    const { byTone, byState } = counts(members, states);
    detail = summary(members, byState);
    g.setAttribute('data-instances', members.length);
    let offset = 12;
    for (const t of TONES) {
      const w = ((W - 24) * byTone[t]) / members.length;
      if (w > 0) g.append(svg('rect', { x: offset, y: H - 12, width: w, height: 5, class: `bar ${t}` }));
      offset += w;
    }
  }
  g.append(svg('text', { x: 12, y: 40, class: 'detail' }, detail.length > 34 ? `${detail.slice(0, 33)}…` : detail));
  g.addEventListener('click', () => onSelect(node.slug));
  g.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); onSelect(node.slug); } });
  return g;
}
