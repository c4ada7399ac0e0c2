/**
 * Training progress: a cli-progress bar (step, loss, τ, notes/s, ETA) on a terminal, plain
 * log lines where the output is not a terminal (notebooks, CI logs, files), nothing in tests.
 *
 * A trainer calls `start(total)`, `update(step, metrics)` after each step and `stop()`.
 */
import { SingleBar } from 'cli-progress';

export interface ProgressMetrics {
  loss?: number;
  /** The temperature variable τ (the logit scale is exp τ). */
  tau?: number;
  notesPerSec?: number;
  lr?: number;
}

export interface ProgressReporter {
  /** Which output this reporter produces. */
  readonly mode: ProgressMode;
  /** Begins a run of `total` steps, `startStep` of which are already done (resume). */
  start(total: number, startStep?: number): void;
  /** Reports that `step` steps are done, with the latest metrics. */
  update(step: number, metrics?: ProgressMetrics): void;
  /** A one-off message (validation loss, checkpoint saved…) that does not break the bar. */
  log(message: string): void;
  /** Ends the run (prints the final state in line mode, releases the terminal in bar mode). */
  stop(): void;
}

export type ProgressMode = 'bar' | 'lines' | 'silent';
export const PROGRESS_MODES: readonly (ProgressMode | 'auto')[] = ['auto', 'bar', 'lines', 'silent'];

/** The part of a writable stream the reporter uses. */
export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  /** Prefix of every line, e.g. the preset name. Defaults to 'train'. */
  label?: string;
  /** Force silence. Defaults to false (but see `mode`). */
  silent?: boolean;
  /**
   * 'auto' (the default): silent when `silent`, when NODE_ENV is 'test' or when running under
   * node:test (NODE_TEST_CONTEXT is set in its test processes); else a bar when the stream is
   * a TTY, lines otherwise.
   */
  mode?: ProgressMode | 'auto';
  /** Where to write. Defaults to process.stdout. */
  stream?: ProgressStream;
  /** Line mode: at most one line per this many seconds (first and last step always). Defaults to 10. */
  lineEverySeconds?: number;
  /** Environment consulted by 'auto'. Defaults to process.env. */
  env?: Record<string, string | undefined>;
  /** Clock in milliseconds. Defaults to Date.now. */
  now?: () => number;
}

/** Resolves 'auto' to the concrete mode (exported for the CLI's --help and for tests). */
export function resolveProgressMode(opts: ProgressOptions = {}): ProgressMode {
  const mode = opts.mode ?? 'auto';
  if (!PROGRESS_MODES.includes(mode)) throw new Error(`progress: mode "${mode}" is not one of ${PROGRESS_MODES.join(', ')}`);
  if (opts.silent) return 'silent';
  if (mode !== 'auto') return mode;
  const env = opts.env ?? process.env;
  if (env.NODE_ENV === 'test' || env.NODE_TEST_CONTEXT) return 'silent';
  const stream = opts.stream ?? process.stdout;
  return stream.isTTY ? 'bar' : 'lines';
}

/** Seconds → "1:05:09" / "5:09"; unknown → "--:--". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const mm = h > 0 ? String(m).padStart(2, '0') : String(m);
  return `${h > 0 ? `${h}:` : ''}${mm}:${String(r).padStart(2, '0')}`;
}

function fmt(x: number | undefined, digits: number): string {
  return x === undefined || !Number.isFinite(x) ? (x === undefined ? '-' : String(x)) : x.toFixed(digits);
}

export function createProgress(opts: ProgressOptions = {}): ProgressReporter {
  const mode = resolveProgressMode(opts);
  const label = opts.label ?? 'train';
  const stream = opts.stream ?? process.stdout;
  const now = opts.now ?? Date.now;
  switch (mode) {
    case 'silent':
      return { mode, start() {}, update() {}, log() {}, stop() {} };
    case 'lines':
      return new LineProgress(label, stream, now, (opts.lineEverySeconds ?? 10) * 1000);
    case 'bar':
      return new BarProgress(label, stream);
    default: {
      const never: never = mode;
      throw new Error(`progress: unknown mode ${never}`);
    }
  }
}

/** One line per interval: `train step 40/200 (20%) | loss 1.2345 | τ 3.012 | 512 notes/s | ETA 1:20`. */
class LineProgress implements ProgressReporter {
  readonly mode = 'lines' as const;
  private total = 0;
  private startStep = 0;
  private startedAt = 0;
  private lastLineAt = -Infinity;
  private step = 0;
  private metrics: ProgressMetrics = {};
  private printedStep = -1;

  constructor(
    private readonly label: string,
    private readonly stream: ProgressStream,
    private readonly now: () => number,
    private readonly everyMs: number,
  ) {}

  start(total: number, startStep = 0): void {
    this.total = total;
    this.startStep = this.step = startStep;
    this.startedAt = this.now();
    this.lastLineAt = -Infinity;
    this.printedStep = -1;
    this.stream.write(`${this.label}: ${total} steps${startStep ? `, resuming at ${startStep}` : ''}\n`);
  }

  update(step: number, metrics: ProgressMetrics = {}): void {
    this.step = step;
    this.metrics = { ...this.metrics, ...metrics };
    const t = this.now();
    const first = this.printedStep < 0;
    if (first || step >= this.total || t - this.lastLineAt >= this.everyMs) {
      this.print(t);
      this.lastLineAt = t;
    }
  }

  log(message: string): void {
    this.stream.write(`${this.label}: ${message}\n`);
  }

  stop(): void {
    if (this.printedStep !== this.step) this.print(this.now());
  }

  private print(t: number): void {
    const done = this.step - this.startStep;
    const elapsed = (t - this.startedAt) / 1000;
    const eta = done > 0 ? (elapsed / done) * (this.total - this.step) : NaN;
    const pct = this.total > 0 ? Math.floor((100 * this.step) / this.total) : 0;
    const m = this.metrics;
    const parts = [
      `${this.label} step ${this.step}/${this.total} (${pct}%)`,
      `loss ${fmt(m.loss, 4)}`,
      `τ ${fmt(m.tau, 3)}`,
      `${fmt(m.notesPerSec, 0)} notes/s`,
    ];
    if (m.lr !== undefined) parts.push(`lr ${m.lr.toExponential(2)}`);
    parts.push(`ETA ${formatDuration(eta)}`);
    this.stream.write(parts.join(' | ') + '\n');
    this.printedStep = this.step;
  }
}

/** cli-progress bar; ETA from cli-progress's rate over recent updates. */
class BarProgress implements ProgressReporter {
  readonly mode = 'bar' as const;
  private bar: SingleBar | undefined;

  constructor(
    private readonly label: string,
    private readonly stream: ProgressStream,
  ) {}

  start(total: number, startStep = 0): void {
    this.bar?.stop();
    this.bar = new SingleBar({
      stream: this.stream as NodeJS.WritableStream,
      format: `${this.label} [{bar}] {value}/{total} | loss {loss} | τ {tau} | {nps} notes/s | ETA {eta_formatted}`,
      barsize: 24,
      hideCursor: false,
      clearOnComplete: false,
      etaBuffer: 20,
      // ETA over the steps of this run only, not those done before a resume.
      progressCalculationRelative: true,
    });
    this.bar.start(total, startStep, { loss: '-', tau: '-', nps: '-' });
  }

  update(step: number, m: ProgressMetrics = {}): void {
    const payload: Record<string, string> = {};
    if (m.loss !== undefined) payload.loss = fmt(m.loss, 4);
    if (m.tau !== undefined) payload.tau = fmt(m.tau, 3);
    if (m.notesPerSec !== undefined) payload.nps = fmt(m.notesPerSec, 0);
    this.bar?.update(step, payload);
  }

  log(message: string): void {
    // Print above the bar: clear the bar's line, write the message, let the bar redraw.
    this.stream.write(`\r\x1b[K${this.label}: ${message}\n`);
    this.bar?.render();
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}
