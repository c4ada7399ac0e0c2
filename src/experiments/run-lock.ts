/**
 * An exclusive lock on a run folder, held for the whole run: a second `notellm2` process
 * writing into the same folder (another `train`, `ablate`, `saliency` or `report`) stops at once
 * with a message naming the holder, instead of two runs interleaving checkpoint renames or
 * replacing each other's results.
 *
 * The lock is a small JSON file naming its holder (pid, host, command, start time), created
 * complete and atomically (written beside it, then hard-linked into place, which fails when a
 * lock exists). A lock whose process is gone (same host, no such pid) is stale and is taken
 * over; a lock from another host cannot be checked and is respected. Within one process the lock
 * is re-entrant (`ablate` holds it and the runner it calls takes it again), and it is removed
 * when the last holder releases it or the process exits.
 */
import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';

export interface LockHolder {
  pid: number;
  host: string;
  command: string;
  started: string;
}

/** Thrown when another live process holds the lock; the message names it. */
export class RunFolderBusyError extends Error {
  constructor(
    readonly file: string,
    readonly holder: LockHolder,
  ) {
    const where = holder.host === hostname() ? '' : ` on ${holder.host}`;
    super(
      `${dirname(file)} is in use by another notellm2 process: pid ${holder.pid}${where} (${holder.command}), started ${holder.started}; ` +
        `wait for it to finish or choose another --out (if that process is gone${where ? ' from its host' : ''}, remove ${file})`,
    );
    this.name = 'RunFolderBusyError';
  }
}

export interface HeldLock {
  readonly file: string;
  /** Releases this hold; the file goes when the process's last hold is released. */
  release(): void;
}

const held = new Map<string, { count: number; stamp: string }>();
let exitHook = false;

function readHolder(file: string): LockHolder | null {
  try {
    const h = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockHolder>;
    if (Number.isInteger(h.pid) && typeof h.host === 'string' && typeof h.started === 'string') {
      return { pid: h.pid!, host: h.host, command: String(h.command ?? '?'), started: h.started };
    }
  } catch {
    // Unreadable or gone: the callers treat both as "no valid holder".
  }
  return null;
}

/**
 * Whether the holder is a process that still runs (a holder on another host is assumed to). A
 * lock naming this very process that it does not hold was left by an earlier process with the
 * same pid (pids are reused; in a container every run may be pid 1).
 */
function alive(h: LockHolder): boolean {
  if (h.host !== hostname()) return true;
  if (h.pid === process.pid) return false;
  try {
    process.kill(h.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  // A process with that pid runs; if it started after the lock was taken, it is another
  // process that was given the dead holder's pid.
  const start = processStartMs(h.pid);
  return start === null || start <= Date.parse(h.started) + 1000;
}

/** When a process started (ms since the epoch), from Linux's /proc; null where that is not available. */
function processStartMs(pid: number): number | null {
  try {
    // Field 22 of /proc/<pid>/stat (after the parenthesised command name) is the start time in
    // clock ticks after boot; Linux's USER_HZ is 100 on every mainstream architecture.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    const btime = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]);
    return Number.isFinite(ticks) && Number.isFinite(btime) ? btime * 1000 + ticks * 10 : null;
  } catch {
    return null;
  }
}

/** Creates `file` with `content` only if it does not exist, never visible half-written. */
function createExclusive(file: string, content: string): boolean {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.${Date.now().toString(36)}`);
  writeFileSync(tmp, content);
  try {
    linkSync(tmp, file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  } finally {
    unlinkSync(tmp);
  }
}

/**
 * Takes the lock file `file` for this process (its folder must exist), taking over a stale one;
 * throws RunFolderBusyError while another live process holds it.
 */
export function acquireLock(file: string, command: string): HeldLock {
  const mine = held.get(file);
  if (mine) {
    mine.count++;
    return hold(file);
  }
  const me: LockHolder = { pid: process.pid, host: hostname(), command, started: new Date().toISOString() };
  for (let attempt = 0; attempt < 5; attempt++) {
    if (createExclusive(file, JSON.stringify(me, null, 2) + '\n')) {
      held.set(file, { count: 1, stamp: me.started });
      if (!exitHook) {
        exitHook = true;
        process.on('exit', () => {
          for (const f of held.keys()) removeIfOurs(f);
        });
      }
      return hold(file);
    }
    const holder = readHolder(file);
    if (holder && alive(holder)) throw new RunFolderBusyError(file, holder);
    // Stale (its process is gone) or unreadable: move it aside under a name of our own, then
    // check that what was moved is the lock judged stale — another process may have taken the
    // stale lock over in between, and its fresh lock must be put back, not removed.
    const aside = `${file}.stale-${process.pid}-${attempt}`;
    try {
      renameSync(file, aside);
    } catch {
      continue; // someone else moved it first; look again
    }
    const moved = readHolder(aside);
    if (moved === null || !alive(moved)) {
      unlinkSync(aside);
      continue;
    }
    try {
      linkSync(aside, file);
    } catch {
      // A third process created a lock meanwhile; it holds the folder now.
    }
    unlinkSync(aside);
    throw new RunFolderBusyError(file, moved!);
  }
  throw new Error(`${file}: could not take the lock after 5 attempts (several processes are starting in ${dirname(file)} at once?)`);
}

function hold(file: string): HeldLock {
  let released = false;
  return {
    file,
    release() {
      if (released) return;
      released = true;
      const h = held.get(file);
      if (!h) return;
      if (--h.count > 0) return;
      removeIfOurs(file);
    },
  };
}

function removeIfOurs(file: string): void {
  const h = held.get(file);
  held.delete(file);
  const cur = readHolder(file);
  if (h && cur && cur.pid === process.pid && cur.started === h.stamp) {
    try {
      unlinkSync(file);
    } catch {
      // Already gone (the folder was removed): nothing to release.
    }
  }
}
