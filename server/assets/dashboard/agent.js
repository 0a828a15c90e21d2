// The agent panel of the run page: what the agent did (attempts, branch, commits, pull
// requests, cost, response), its approval and follow-up forms, and its log, which grows
// as lines stream in. Lines are drawn once per animation frame and the oldest dropped past
// a bound, so an agent printing thousands of lines a second never freezes the page.

import { api, badge, cost, el, fill, link, report, span } from './common.js';

const MOST_LINES = 5000;

export class AgentPanel {
  constructor(host, runId, { onActed }) {
    this.host = host;
    this.runId = runId;
    this.onActed = onActed;
    this.slug = '';
    this.log = null;
    this.logSeq = Infinity;
    this.waiting = [];
    this.queued = [];
    this.frame = 0;
    this.follow = true;
  }

  /** Shows agent `view` (a `/v1/runs/{id}` agent) of graph node `node`. */
  show(view, node) {
    const changed = this.slug !== view.slug;
    this.slug = view.slug;
    // The forms outlive redraws, so what a person is typing survives the run's updates.
    if (changed || !this.forms) this.forms = { approval: this.approval(), followUp: this.followUp() };
    this.node = node;
    const facts = el('dl', { class: 'facts' },
      fact('State', badge(view.state)),
      fact('Attempts', view.attempts),
      fact('Machine', view.machine ?? '—'),
      node?.template ? fact('Fan-out', `${node.template} · item ${node.item}`) : null,
      fact('Branch', view.branch ?? '—'),
      fact('Commits', view.commits),
      view.diff_stat ? fact('Diff', view.diff_stat) : null,
      fact('Pull requests', view.prs.length ? view.prs.map((p) => link(p)) : '—'),
      fact('Cost', cost(view.cost_usd)),
      view.turns != null ? fact('Turns', view.turns) : null,
      view.session_id ? fact('Session', view.session_id) : null,
      view.started_at ? fact('Took', span(view.started_at, view.finished_at)) : null);
    const parts = [el('h2', {}, view.slug), facts];
    if (view.error) parts.push(el('h3', {}, 'Error'), el('pre', { class: 'error-text' }, view.error));
    if (view.response) parts.push(el('h3', {}, 'Response'), el('pre', { class: 'response', id: 'response' }, view.response));
    if (node?.awaiting_approval) parts.push(this.forms.approval);
    if (!['failed', 'skipped', 'canceled'].includes(view.state)) parts.push(this.forms.followUp);
    if (changed || !this.log) {
      this.log = el('div', { class: 'log', id: 'log', role: 'log', 'aria-live': 'off' });
      this.log.addEventListener('scroll', () => {
        const l = this.log;
        this.follow = l.scrollTop + l.clientHeight >= l.scrollHeight - 4;
      });
      this.loadLog();
    }
    parts.push(el('h3', {}, 'Log'), this.log);
    fill(this.host, ...parts);
  }

  approval() {
    const comment = el('textarea', { id: 'approval-comment', rows: 2, placeholder: 'A comment (on a rejection: what to change)' });
    const decide = (approve) => async () => {
      try {
        await api(`/v1/runs/${encodeURIComponent(this.runId)}/agents/${encodeURIComponent(this.slug)}/approve`,
          { method: 'POST', body: { approve, comment: comment.value || null } });
        comment.value = '';
        this.onActed();
      } catch (error) { report(error); }
    };
    return el('section', { class: 'approval-box' },
      el('h3', {}, 'Waiting for your approval'), comment,
      el('div', { class: 'buttons' },
        el('button', { id: 'approve', class: 'primary', onclick: decide(true) }, 'Approve'),
        el('button', { id: 'reject', class: 'danger', onclick: decide(false) }, 'Reject')));
  }

  followUp() {
    const text = el('textarea', { id: 'follow-up-text', rows: 2, placeholder: 'A message for the agent, taken when its turn is over' });
    const send = async () => {
      if (!text.value.trim()) return;
      try {
        await api(`/ui/runs/${encodeURIComponent(this.runId)}/agents/${encodeURIComponent(this.slug)}/queue`,
          { method: 'POST', body: { text: text.value } });
        text.value = '';
        this.onActed();
      } catch (error) { report(error); }
    };
    return el('section', { class: 'follow-up' }, el('h3', {}, 'Queue a follow-up'), text,
      el('div', { class: 'buttons' }, el('button', { id: 'queue', onclick: send }, 'Queue')));
  }

  async loadLog() {
    const slug = this.slug;
    this.logSeq = Infinity;
    this.waiting = [];
    this.queued = [];
    this.lastAttempt = undefined;
    try {
      const log = await api(`/ui/runs/${encodeURIComponent(this.runId)}/agents/${encodeURIComponent(slug)}/log`);
      if (slug !== this.slug) return;
      if (log.omitted) this.log.append(el('div', { class: 'muted' }, `… ${log.omitted} earlier lines not shown`));
      this.queued.push(...log.lines);
      this.logSeq = log.seq;
      // Lines that streamed in while the log was read, and are newer than it.
      this.queued.push(...this.waiting.filter((l) => l.seq > log.seq));
      this.waiting = [];
      this.schedule();
    } catch (error) { report(error); }
  }

  /** An `agent_output` event from the run's stream. */
  output(seq, event) {
    if (event.slug !== this.slug) return;
    const line = { seq, attempt: event.attempt, stream: event.stream, line: event.line };
    if (this.logSeq === Infinity) this.waiting.push(line);
    else if (seq > this.logSeq) { this.queued.push(line); this.schedule(); }
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.frame = 0;
    const lines = this.queued.splice(0);
    if (!this.log || lines.length === 0) return;
    const fragment = document.createDocumentFragment();
    for (const l of lines.slice(-MOST_LINES)) {
      if (this.lastAttempt !== undefined && l.attempt !== this.lastAttempt) {
        fragment.append(el('div', { class: 'attempt muted' }, `— attempt ${l.attempt} —`));
      }
      this.lastAttempt = l.attempt;
      fragment.append(el('div', { class: `line ${l.stream}`, 'data-attempt': l.attempt }, l.line));
    }
    this.log.append(fragment);
    let extra = this.log.childElementCount - MOST_LINES;
    while (extra-- > 0) this.log.firstElementChild.remove();
    if (this.follow) this.log.scrollTop = this.log.scrollHeight;
  }
}

function fact(name, ...value) {
  return [el('dt', {}, name), el('dd', {}, ...value)];
}
