/**
 * Progress of long work: one line rewritten in place on a terminal, plain
 * lines at a steady pace when the output is piped to a file or another program.
 */

export interface ProgressOptions {
  /** Where lines go (default: standard error). */
  stream?: NodeJS.WriteStream;
  /** Seconds between plain lines when not on a terminal (default 10). */
  plainEvery?: number;
  /** Force plain lines even on a terminal. */
  plain?: boolean;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}

/** Reports `done / total` units of work with a rate and an ETA. */
export class Progress {
  private readonly stream: NodeJS.WriteStream;
  private readonly live: boolean;
  private readonly plainEvery: number;
  private readonly started = performance.now();
  private lastPrinted = 0;
  private lastWidth = 0;

  constructor(
    private readonly label: string,
    private readonly total: number,
    options: ProgressOptions = {},
  ) {
    this.stream = options.stream ?? process.stderr;
    this.live = options.plain !== true && this.stream.isTTY;
    this.plainEvery = (options.plainEvery ?? 10) * 1000;
  }

  /** Reports that `done` units are finished; `detail` is appended (loss, images/s, ...). */
  update(done: number, detail = '', force = false): void {
    const now = performance.now();
    const seconds = (now - this.started) / 1000;
    const eta = done > 0 ? (seconds / done) * (this.total - done) : Infinity;
    const text = `${this.label} ${done}/${this.total} ${detail} ETA ${formatDuration(eta)}`.replace(/\s+/g, ' ');
    if (this.live) {
      if (!force && now - this.lastPrinted < 100 && done < this.total) return;
      const padded = text.padEnd(this.lastWidth);
      this.lastWidth = text.length;
      this.stream.write(`\r${padded}`);
    } else {
      if (!force && now - this.lastPrinted < this.plainEvery && done < this.total) return;
      this.stream.write(`${text}\n`);
    }
    this.lastPrinted = now;
  }

  /** Ends the live line (prints a newline on a terminal). */
  finish(summary?: string): void {
    if (this.live) this.stream.write('\n');
    if (summary !== undefined) this.stream.write(`${summary}\n`);
  }
}

export { formatDuration };
