// What every page shares: building the DOM (text always goes in as text, never as HTML),
// requests with the session's CSRF token, and the formatting of states, times and costs.

export const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? '';
export const subject = document.body.dataset.subject ?? '';

/** An element with attributes and children; strings become text nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces a node's children. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** A link only to http(s) addresses: agents supply pull request links. */
export function link(href, text) {
  try {
    const url = new URL(href, location.origin);
    if (url.protocol === 'http:' || url.protocol === 'https:') {
      return el('a', { href: url.href, rel: 'noopener noreferrer' }, text ?? href);
    }
  } catch { /* not a URL: shown as text below */ }
  return el('span', {}, text ?? href);
}

export class RequestError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** A JSON request to the server; a lost session goes back to the login form. */
export async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  });
  if (response.status === 401) {
    location.assign('/login');
    throw new RequestError(401, 'unauthorized', 'logged out');
  }
  const text = await response.text();
  let value = null;
  try { value = text ? JSON.parse(text) : null; } catch { value = null; }
  if (!response.ok) {
    const error = value?.error ?? {};
    throw new RequestError(response.status, error.code ?? 'error', error.message ?? text);
  }
  return value;
}

const DONE = new Set(['completed', 'canceled', 'skipped']);
const WAITING = new Set(['idle', 'sleeping', 'checks-pending', 'task-complete', 'queued', 'interrupted', 'destroying']);

/** The dot colour of a state: green running, yellow waiting, red failed, gray done. */
export function tone(state) {
  if (state === 'failed') return 'red';
  if (state === 'running' || state === 'starting') return 'green';
  if (WAITING.has(state)) return 'yellow';
  if (DONE.has(state)) return 'gray';
  return 'none';
}

export function dot(state) {
  return el('span', { class: `dot ${tone(state)}`, title: state, 'aria-hidden': 'true' });
}

export function badge(state) {
  return el('span', { class: `badge ${tone(state)}` }, dot(state), state);
}

export const terminal = (status) => ['completed', 'failed', 'canceled'].includes(status);

export function duration(ms) {
  if (!Number.isFinite(ms) || ms < 0) return '';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

export function age(iso, now = Date.now()) {
  const at = Date.parse(iso);
  return Number.isNaN(at) ? '' : `${duration(now - at)} ago`;
}

export function span(start, end, now = Date.now()) {
  const from = Date.parse(start);
  const to = end ? Date.parse(end) : now;
  return Number.isNaN(from) || Number.isNaN(to) ? '' : duration(to - from);
}

export function cost(usd) {
  return typeof usd === 'number' ? `$${usd.toFixed(usd < 1 ? 4 : 2)}` : '—';
}

/** Shows an error where the page keeps its messages. */
export function report(error) {
  const box = document.getElementById('messages') ?? document.getElementById('main');
  box.prepend(el('p', { class: 'error', role: 'alert' }, error.message ?? String(error)));
}
