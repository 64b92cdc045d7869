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

/**
 * Where the value of field `name` starts when the line [start, end) is that field (`name`, `name:` or
 * `name: value`, one space after the colon dropped); -1 when it is another field.
 */
function fieldValueStart(buffer: Buffer, start: number, end: number, name: Buffer): number {
  const nameEnd = start + name.length;
  if (nameEnd > end || buffer.compare(name, 0, name.length, start, nameEnd) !== 0) return -1;
  if (nameEnd === end) return end;
  if (buffer[nameEnd] !== COLON) return -1;
  return nameEnd + 1 < end && buffer[nameEnd + 1] === SPACE ? nameEnd + 2 : nameEnd + 1;
}

/**
 * An incremental text/event-stream decoder (the WHATWG rules: LF, CRLF or CR line ends, `data:` lines joined
 * with LF, `event:`, comments, an event dispatched by a blank line) working on the bytes as they arrive: lines
 * are found with Buffer.indexOf, and only data and event values are turned into strings. A line split across
 * reads is the only case that copies bytes. Its tests compare it with eventsource-parser on random input.
 */
export class SseDecoder {
  /** The start of a line that has not ended yet, in the pieces it came in (joined once, when it ends). */
  private carry: Buffer[] = [];
  private carryBytes = 0;
  /** The previous read ended with CR: an LF at the start of the next one ends the same line. */
  private pendingCr = false;
  private data: string | undefined;
  private event: string | undefined;

  /** Decodes one read; the events it completes are appended to `out`. */
  push(chunk: Buffer, out: ServerSentEvent[]): void {
    let buffer = chunk;
    let start = 0;
    // An empty read says nothing about the LF that may follow the CR: the next one will.
    if (this.pendingCr && buffer.length > 0) {
      this.pendingCr = false;
      if (buffer[0] === LF) start = 1;
    }
    if (this.carryBytes > 0) {
      // Still no line end: keep the piece, without copying what came before (a long line stays linear).
      if (buffer.indexOf(LF, start) === -1 && buffer.indexOf(CR, start) === -1) return this.keep(buffer.subarray(start));
      buffer = Buffer.concat([...this.carry, buffer.subarray(start)]);
      start = 0;
      this.carry = [];
      this.carryBytes = 0;
    }
    // Each search result is kept until the scan passes it: one pass over the read, whatever the line ends.
    let nextLf = buffer.indexOf(LF, start);
    let nextCr = buffer.indexOf(CR, start);
    while (start < buffer.length) {
      if (nextLf !== -1 && nextLf < start) nextLf = buffer.indexOf(LF, start);
      if (nextCr !== -1 && nextCr < start) nextCr = buffer.indexOf(CR, start);
      let end = nextLf;
      if (nextCr !== -1 && (end === -1 || nextCr < end)) end = nextCr;
      if (end === -1) break;
      this.line(buffer, start, end, out);
      if (buffer[end] === CR) {
        if (end + 1 === buffer.length) this.pendingCr = true;
        else if (buffer[end + 1] === LF) end += 1;
      }
      start = end + 1;
    }
    // A copy, so that the rest of a large read is not kept alive by a short tail.
    if (start < buffer.length) this.keep(Buffer.from(buffer.subarray(start)));
  }

  private keep(piece: Buffer): void {
    this.carryBytes += piece.length;
    if (this.carryBytes > MAX_SSE_LINE_BYTES) throw new RangeError(`An event-stream line is longer than ${MAX_SSE_LINE_BYTES} bytes`);
    if (piece.length > 0) this.carry.push(piece);
  }

  private line(buffer: Buffer, start: number, end: number, out: ServerSentEvent[]): void {
    if (start === end) {
      if (this.data !== undefined) out.push(this.event === undefined ? { data: this.data } : { event: this.event, data: this.data });
      this.data = undefined;
      this.event = undefined;
      return;
    }
    if (buffer[start] === COLON) return; // a comment (keep-alive)
    // Only `data` and `event` matter (`id`, `retry` and others mean nothing for a response stream), so the
    // field is recognised by its first bytes rather than by searching the line for a colon.
    const data = fieldValueStart(buffer, start, end, DATA);
    if (data !== -1) {
      const value = buffer.toString('utf8', data, end);
      this.data = this.data === undefined ? value : `${this.data}\n${value}`;
      return;
    }
    const event = fieldValueStart(buffer, start, end, EVENT);
    // An empty name means the default type, as if there were no `event:` line.
    if (event !== -1) this.event = event < end ? buffer.toString('utf8', event, end) : undefined;
  }
}
