const NEWLINE = 0x0a;

/** What a framer does with each complete line and with a line too long to keep. */
export interface LineSink {
  /** one complete line, without its newline; valid only during the call */
  line(buf: Buffer, start: number, end: number): void;
  /** a line longer than the limit was dropped; `bytes` is how much of it was seen */
  oversize(bytes: number): void;
}

/**
 * Splits a byte stream into newline-terminated lines. Chunks are kept as a list until a line ends,
 * then joined once, so a 10 MB line arriving in 64 KB pieces costs one copy, not a quadratic rebuild;
 * lines wholly inside one chunk are handed over as a slice of that chunk with no copy at all.
 */
export class LineFramer {
  private parts: Buffer[] = [];
  private partBytes = 0;
  /** bytes of an oversize line being skipped until its newline, or -1 */
  private skipping = -1;

  constructor(
    private readonly maxLineBytes: number,
    private readonly sink: LineSink,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    let nl = chunk.indexOf(NEWLINE);
    while (nl !== -1) {
      if (this.skipping !== -1) {
        this.sink.oversize(this.skipping + nl - start);
        this.skipping = -1;
      } else if (this.partBytes === 0) {
        if (nl - start > this.maxLineBytes) this.sink.oversize(nl - start);
        else this.sink.line(chunk, start, nl);
      } else {
        const total = this.partBytes + nl - start;
        if (total > this.maxLineBytes) {
          this.sink.oversize(total);
        } else {
          this.parts.push(chunk.subarray(start, nl));
          this.sink.line(Buffer.concat(this.parts, total), 0, total);
        }
        this.parts = [];
        this.partBytes = 0;
      }
      start = nl + 1;
      nl = chunk.indexOf(NEWLINE, start);
    }
    if (start >= chunk.length) return;
    const rest = chunk.length - start;
    if (this.skipping !== -1) {
      this.skipping += rest;
      return;
    }
    this.parts.push(start === 0 ? chunk : chunk.subarray(start));
    this.partBytes += rest;
    if (this.partBytes > this.maxLineBytes) {
      this.skipping = this.partBytes;
      this.parts = [];
      this.partBytes = 0;
    }
  }

  /** The stream ended: a last line without a newline still counts. */
  end(): void {
    if (this.skipping !== -1) {
      this.sink.oversize(this.skipping);
    } else if (this.partBytes > 0) {
      const line = Buffer.concat(this.parts, this.partBytes);
      this.sink.line(line, 0, line.length);
    }
    this.parts = [];
    this.partBytes = 0;
    this.skipping = -1;
  }
}
