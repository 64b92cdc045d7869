export interface ServerSentEvent {
  /** The `event:` field, when the event had one. */
  event?: string;
  data: string;
}

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const SPACE = 0x20;
const DATA = Buffer.from('data');
const EVENT = Buffer.from('event');

/** Longer lines mean a broken or hostile upstream, not an answer: refused rather than buffered forever. */
export const MAX_SSE_LINE_BYTES = 16 * 1024 * 1024;

function fieldIs(buffer: Buffer, start: number, end: number, name: Buffer): boolean {
  return end - start === name.length && buffer.compare(name, 0, name.length, start, end) === 0;
}

/**
 * An incremental text/event-stream decoder (the WHATWG rules: LF, CRLF or CR line ends, `data:` lines joined
 * with LF, `event:`, comments, an event dispatched by a blank line) working on the bytes as they arrive: lines
 * are found with Buffer.indexOf, and only data and event values are turned into strings. A line split across
 * reads is the only case that copies bytes. Its tests compare it with eventsource-parser on random input.
 */
export class SseDecoder {
  private carry: Buffer | undefined;
  /** The previous read ended with CR: an LF at the start of the next one ends the same line. */
  private pendingCr = false;
  private data: string | undefined;
  private event: string | undefined;

  /** Decodes one read; the events it completes are appended to `out`. */
  push(chunk: Buffer, out: ServerSentEvent[]): void {
    let buffer = chunk;
    let start = 0;
    if (this.pendingCr) {
      this.pendingCr = false;
      if (buffer.length > 0 && buffer[0] === LF) start = 1;
    }
    if (this.carry) {
      buffer = Buffer.concat([this.carry, buffer.subarray(start)]);
      start = 0;
      this.carry = undefined;
    }
    let nextCr = buffer.indexOf(CR, start);
    while (start < buffer.length) {
      let end = buffer.indexOf(LF, start);
      if (nextCr !== -1 && nextCr < start) nextCr = buffer.indexOf(CR, start);
      if (nextCr !== -1 && (end === -1 || nextCr < end)) end = nextCr;
      if (end === -1) break;
      this.line(buffer, start, end, out);
      if (buffer[end] === CR) {
        if (end + 1 === buffer.length) this.pendingCr = true;
        else if (buffer[end + 1] === LF) end += 1;
      }
      start = end + 1;
    }
    if (start < buffer.length) {
      if (buffer.length - start > MAX_SSE_LINE_BYTES) throw new RangeError(`An event-stream line is longer than ${MAX_SSE_LINE_BYTES} bytes`);
      // A copy, so that the rest of a large read is not kept alive by a short tail.
      this.carry = Buffer.from(buffer.subarray(start));
    }
  }

  private line(buffer: Buffer, start: number, end: number, out: ServerSentEvent[]): void {
    if (start === end) {
      if (this.data !== undefined) out.push(this.event === undefined ? { data: this.data } : { event: this.event, data: this.data });
      this.data = undefined;
      this.event = undefined;
      return;
    }
    if (buffer[start] === COLON) return; // a comment (keep-alive)
    let colon = buffer.indexOf(COLON, start);
    if (colon === -1 || colon > end) colon = end;
    let valueStart = colon + 1;
    if (valueStart < end && buffer[valueStart] === SPACE) valueStart += 1;
    if (valueStart > end) valueStart = end;
    if (fieldIs(buffer, start, colon, DATA)) {
      const value = buffer.toString('utf8', valueStart, end);
      this.data = this.data === undefined ? value : `${this.data}\n${value}`;
    } else if (fieldIs(buffer, start, colon, EVENT)) {
      this.event = buffer.toString('utf8', valueStart, end);
    }
    // `id:` and `retry:` mean nothing for a response stream.
  }
}
