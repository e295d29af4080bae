/**
 * A server is hung when this many calls in a row time out, each made after the last message it sent (it
 * stayed silent through each call's whole timeout, and since): its transport restarts it, if it can.
 */
export const HUNG_AFTER_TIMEOUTS = 3;

/** Tells a hung server (alive, silent) from a slow one, by the calls it lets time out without a word. */
export class SilenceWatch {
  /** messages received from the server so far: a call made at the same count and timed out met only silence */
  heard = 0;
  /** silent timeouts in a row, and the `heard` they were counted at (any later message breaks the row) */
  private inRow = 0;
  private rowAt = -1;

  /** A call made when `heard` was `stamp` timed out; true at the HUNG_AFTER_TIMEOUTS-th in a row met with silence. */
  timedOut(stamp: number): boolean {
    if (stamp !== this.heard) return false;
    if (this.rowAt !== this.heard) {
      this.rowAt = this.heard;
      this.inRow = 0;
    }
    return ++this.inRow >= HUNG_AFTER_TIMEOUTS;
  }

  /** Why the server is taken for hung (for its transport's restart, the log and the calls in flight); starts a new row. */
  verdict(callTimeoutMs: number): string {
    const timeouts = this.inRow;
    this.inRow = 0;
    const within = callTimeoutMs < 1000 ? `${callTimeoutMs} ms` : `${Math.round(callTimeoutMs / 100) / 10} s`;
    return `stopped answering (${timeouts} calls in a row had no answer within ${within}, and it sent nothing meanwhile), so the gateway ended it`;
  }
}
