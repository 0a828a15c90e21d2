// A Server-Sent Events client over fetch: EventSource cannot start after a given event, so
// this one sends `Last-Event-ID` itself, on the first connection and on every reconnection
// after a dropped one, with a growing pause between attempts.

const FIRST_PAUSE = 250;
const LONGEST_PAUSE = 5000;

export class LiveStream {
  /**
   * @param {string} url
   * @param {{after?: number, onEvent: (type: string, data: string, id: string) => void,
   *          onEnd?: () => boolean, onState?: (state: string) => void}} options
   *   `onEnd` is asked when the server ends the stream: true connects again.
   */
  constructor(url, { after = 0, onEvent, onEnd = () => false, onState = () => {} }) {
    this.url = url;
    this.lastId = after > 0 ? String(after) : '';
    this.onEvent = onEvent;
    this.onEnd = onEnd;
    this.onState = onState;
    this.controller = null;
    this.stopped = true;
    this.delivered = 0;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    // A loop still winding down from an earlier stop() sees a newer generation and ends.
    this.generation = (this.generation ?? 0) + 1;
    this.loop(this.generation);
  }

  stop() {
    this.stopped = true;
    this.controller?.abort();
  }

  async loop(generation) {
    let pause = FIRST_PAUSE;
    const current = () => !this.stopped && generation === this.generation;
    while (current()) {
      this.controller = new AbortController();
      try {
        this.delivered = 0;
        await this.connect(this.controller.signal);
        if (!this.onEnd()) break;
        // Connected again at once after a stream that brought something; a stream that ends
        // with nothing new waits longer each time, so it never spins.
        pause = this.delivered > 0 ? FIRST_PAUSE : Math.min(pause * 2, LONGEST_PAUSE);
        if (this.delivered === 0) await new Promise((resolve) => setTimeout(resolve, pause));
      } catch (error) {
        if (!current()) return;
        if (error?.status === 401) { location.assign('/login'); return; }
        this.reconnects = (this.reconnects ?? 0) + 1;
        this.onState('reconnecting');
        await new Promise((resolve) => setTimeout(resolve, pause));
        pause = Math.min(pause * 2, LONGEST_PAUSE);
      }
    }
    if (generation !== this.generation) return;
    this.stopped = true;
    this.onState('ended');
  }

  async connect(signal) {
    const headers = { Accept: 'text/event-stream' };
    if (this.lastId) headers['Last-Event-ID'] = this.lastId;
    const response = await fetch(this.url, { headers, signal, credentials: 'same-origin', cache: 'no-store' });
    if (!response.ok) throw Object.assign(new Error(`stream answered ${response.status}`), { status: response.status });
    this.onState('live');
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let event = { type: 'message', data: [], id: null };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let newline;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith('\r\n', newline) ? 2 : 1));
        event = this.line(line, event);
      }
    }
  }

  /** One line of the stream; a blank line dispatches the event gathered so far. */
  line(line, event) {
    if (line === '') {
      if (event.id !== null) this.lastId = event.id;
      if (event.data.length > 0) {
        this.delivered += 1;
        this.onEvent(event.type, event.data.join('\n'), this.lastId);
      }
      return { type: 'message', data: [], id: null };
    }
    if (line.startsWith(':')) return event;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') event.data.push(value);
    else if (field === 'event') event.type = value;
    else if (field === 'id') event.id = value;
    return event;
  }
}
