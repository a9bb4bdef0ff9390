/**
 * A training progress line: `step/total`, smoothed loss, images per second and ETA. On a TTY it
 * redraws one line in place (carriage return + clear to end of line), at most every
 * `minIntervalMs`; otherwise (a pipe, a log file, or `CI` set in the environment) it writes a
 * plain line every `every` steps and at the last step.
 */

/** Where progress goes: anything with `write` (default `process.stderr`). */
export interface ProgressStream {
  write(chunk: string): unknown;
  readonly isTTY?: boolean;
}

/** Options of {@link ProgressLine}. */
export interface ProgressOptions {
  /** Total number of steps of the run. */
  readonly total: number;
  /** Steps already done when the line starts (e.g. a resumed run; default 0). Rates count only steps after it. */
  readonly start?: number;
  /** Output stream (default `process.stderr`). */
  readonly stream?: ProgressStream;
  /** Redraw in place (default: `stream.isTTY` and no `CI` environment variable). */
  readonly tty?: boolean;
  /** Without a TTY, write a line every this many steps (default 100) and at the last step. */
  readonly every?: number;
  /** β of the loss's exponential moving average (default 0.98, about a 50-step window); bias-corrected. */
  readonly smoothing?: number;
  /** Prefix of every line (default `'train'`). */
  readonly label?: string;
  /** Minimum time between TTY redraws in ms (default 100; the last step is always drawn). */
  readonly minIntervalMs?: number;
  /** Clock in milliseconds (default `performance.now`). */
  readonly now?: () => number;
}

/** `h:mm:ss`, or `m:ss` under an hour; `--:--` when not finite. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

function inCi(): boolean {
  const ci = process.env['CI'];
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';
}

function fmtLoss(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  return Math.abs(x) >= 1e-3 && Math.abs(x) < 1e4 ? x.toPrecision(4) : x.toExponential(3);
}

/**
 * A progress reporter for a training loop. Call {@link ProgressLine.update} after every step and
 * {@link ProgressLine.finish} at the end (or on an error, to end the TTY line).
 *
 * Smoothed loss: `ℓ̄_k = β·ℓ̄_{k−1} + (1 − β)·ℓ_k` from `ℓ̄_0 = 0`, shown divided by `1 − β^k`
 * (the bias correction of Adam), over the steps of this session. Images/s and ETA use all steps
 * since the line started: `rate = (step − start)/elapsed`, `ETA = (total − step)/rate`.
 */
export class ProgressLine {
  private readonly total: number;
  private readonly start: number;
  private readonly stream: ProgressStream;
  private readonly tty: boolean;
  private readonly every: number;
  private readonly beta: number;
  private readonly label: string;
  private readonly minInterval: number;
  private readonly now: () => number;
  private readonly t0: number;
  private lastDraw = -Infinity;
  private avg = 0;
  private count = 0;
  private images = 0;
  private step: number;
  private dirty = false;

  /** Start a progress line (nothing is written until the first update). */
  constructor(opts: ProgressOptions) {
    this.total = opts.total;
    this.start = opts.start ?? 0;
    this.step = this.start;
    this.stream = opts.stream ?? process.stderr;
    this.tty = opts.tty ?? (this.stream.isTTY === true && !inCi());
    this.every = Math.max(1, Math.floor(opts.every ?? 100));
    this.beta = opts.smoothing ?? 0.98;
    if (!(this.beta >= 0 && this.beta < 1)) throw new Error(`ProgressLine: smoothing must be in [0, 1), got ${this.beta}`);
    this.label = opts.label ?? 'train';
    this.minInterval = opts.minIntervalMs ?? 100;
    this.now = opts.now ?? (() => performance.now());
    this.t0 = this.now();
  }

  /** The bias-corrected smoothed loss (NaN before the first update). */
  get smoothedLoss(): number {
    return this.count === 0 ? NaN : this.avg / (1 - this.beta ** this.count);
  }

  /** Record that `step` steps are complete, the last with loss `loss` on `images` images. */
  update(step: number, loss: number, images = 0): void {
    this.step = step;
    this.count += 1;
    this.avg = this.beta * this.avg + (1 - this.beta) * loss;
    this.images += images;
    const last = step >= this.total;
    if (this.tty) {
      const t = this.now();
      if (last || t - this.lastDraw >= this.minInterval) {
        this.lastDraw = t;
        this.stream.write(`\r${this.format()}\x1b[K`);
        this.dirty = true;
      }
    } else if (step % this.every === 0 || last) {
      this.stream.write(`${this.format()}\n`);
    }
  }

  /** End the line: on a TTY, redraw the final state and move to a new line. */
  finish(): void {
    if (this.tty && this.count > 0) {
      this.stream.write(`\r${this.format()}\x1b[K\n`);
      this.dirty = false;
    }
  }

  /** The current line, e.g. `train  1200/5000  24.0%  loss 0.1234  850.2 img/s  ETA 4:12`. */
  format(): string {
    const elapsed = (this.now() - this.t0) / 1000;
    const done = this.step - this.start;
    const rate = elapsed > 0 ? done / elapsed : NaN;
    const ips = elapsed > 0 ? this.images / elapsed : NaN;
    const eta = rate > 0 ? (this.total - this.step) / rate : NaN;
    const w = String(this.total).length;
    const pct = this.total > 0 ? ((100 * this.step) / this.total).toFixed(1) : '100.0';
    const parts = [
      this.label,
      `${String(this.step).padStart(w)}/${this.total}`,
      `${pct.padStart(5)}%`,
      `loss ${fmtLoss(this.smoothedLoss)}`,
      `${Number.isFinite(ips) ? ips.toFixed(1) : '--'} img/s`,
      `ETA ${this.step >= this.total ? '0:00' : formatDuration(eta)}`,
    ];
    return parts.join('  ');
  }

  /** Whether a TTY line is open (drawn but not yet ended by {@link ProgressLine.finish}). */
  get open(): boolean {
    return this.dirty;
  }
}
