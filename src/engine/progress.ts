/**
 * Progress of a long run (issue 15 §4): a cli-progress bar with the ETA on a TTY, otherwise one
 * plain line at most every `intervalS` seconds (and a last one at the end) on standard error.
 */
import { createRequire } from 'node:module';
import type { RunProgress } from './runner.ts';

/** Options of {@link progressReporter}. */
export interface ProgressOptions {
  /** What runs (e.g. `sample`), shown before the counts. */
  readonly label: string;
  /** Where lines go (default: standard error). */
  readonly stream?: NodeJS.WriteStream | { write(s: string): boolean; isTTY?: boolean };
  /** Force the bar (true) or plain lines (false); default: the bar when the stream is a TTY. */
  readonly tty?: boolean;
  /** Least seconds between plain lines (default 10). */
  readonly intervalS?: number;
  /** Clock in seconds (tests). */
  readonly now?: () => number;
}

/** A progress sink: `update` after each batch, `stop` at the end (or on failure). */
export interface ProgressReporter {
  update(p: RunProgress): void;
  stop(): void;
}

/** Seconds as `1h02m`, `3m05s` or `12s`. */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  const r = Math.round(s);
  if (r >= 3600) return `${Math.floor(r / 3600)}h${String(Math.floor((r % 3600) / 60)).padStart(2, '0')}m`;
  if (r >= 60) return `${Math.floor(r / 60)}m${String(r % 60).padStart(2, '0')}s`;
  return `${r}s`;
}

/** One plain progress line. */
export function progressLine(label: string, p: RunProgress): string {
  const pct = p.total > 0 ? Math.floor((100 * p.done) / p.total) : 100;
  const cached = p.cached > 0 ? `, ${p.cached} from the store` : '';
  const eta = p.eta === null ? '' : `, about ${formatDuration(p.eta)} left`;
  return `memscope ${label}: ${p.done}/${p.total} units (${pct} %${cached}), ${formatDuration(p.elapsed)} elapsed${eta}${queueText(p)}`;
}

/** The queue part of a progress line: `; 4 in flight, 10 waiting, 0 retrying, 0 failed; host:12 30/min, …`. */
export function queueText(p: RunProgress): string {
  const q = p.queue;
  if (q === undefined) return '';
  const workers = q.workers.map((w) => `${w.worker} ${p.elapsed > 0 ? ((60 * w.units) / p.elapsed).toFixed(1) : '0'}/min`).join(', ');
  return `; ${q.inFlight} in flight, ${q.waiting} waiting, ${q.retrying} retrying, ${q.failed} failed${workers === '' ? '' : `; ${workers}`}`;
}

/** A reporter for `opts.stream` (standard error by default): bar on a TTY, throttled lines otherwise. */
export function progressReporter(opts: ProgressOptions): ProgressReporter {
  const stream = opts.stream ?? process.stderr;
  const tty = opts.tty ?? stream.isTTY === true;
  if (tty) {
    // loaded only for a terminal (start-up time of non-interactive runs)
    const cliProgress = createRequire(import.meta.url)('cli-progress') as typeof import('cli-progress');
    const bar = new cliProgress.SingleBar(
      {
        stream: stream as NodeJS.WritableStream,
        format: `memscope ${opts.label} [{bar}] {value}/{total} units | {cachedText}elapsed {elapsedText} | ETA {etaText}{queueText}`,
        hideCursor: true,
        clearOnComplete: false,
        etaBuffer: 1,
      },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    let first: number | null = null;
    const clock = opts.now ?? (() => performance.now() / 1000);
    return {
      update(p) {
        // the bar appears once the run has taken 2 s, so that quick runs print nothing
        const t = clock();
        if (first === null) first = t;
        if (!started && t - first < 2) return;
        const payload = { cachedText: p.cached ? `${p.cached} stored | ` : '', elapsedText: formatDuration(p.elapsed), etaText: p.eta === null ? '?' : formatDuration(p.eta), queueText: queueText(p) };
        if (!started) {
          bar.start(p.total, p.done, payload);
          started = true;
        } else bar.update(p.done, payload);
      },
      stop() {
        if (started) bar.stop();
      },
    };
  }
  const now = opts.now ?? (() => performance.now() / 1000);
  const interval = opts.intervalS ?? 10;
  // quiet for runs shorter than the interval: the first line comes `interval` seconds in
  let last: number | null = null;
  let printed = false;
  let latest: RunProgress | null = null;
  return {
    update(p) {
      latest = p;
      const t = now();
      if (last === null) last = t;
      else if (t - last >= interval) {
        stream.write(`${progressLine(opts.label, p)}\n`);
        last = t;
        printed = true;
      }
    },
    stop() {
      // a closing line only when progress was shown, so that the log ends at 100 %
      if (printed && latest !== null) stream.write(`${progressLine(opts.label, latest)}\n`);
      printed = false;
    },
  };
}
