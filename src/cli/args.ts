/** Argument parsers for commander options, with errors that name the option and the expected value. */
import { CHECKPOINT_CHOICES, type CheckpointChoice } from '../train/trainer';
import { RECALL_PROTOCOLS, type RecallProtocol } from '../eval/recall';

/** A number that passes `check`; blank strings are refused (Number('') would be 0). */
export function numberArg(name: string, check: (x: number) => boolean, expected: string) {
  return (v: string): number => {
    const x = Number(v);
    if (v.trim() === '' || !check(x)) throw new Error(`${name}: expected ${expected}, got "${v}"`);
    return x;
  };
}

/** An integer from min to max (at most 2^53 − 1, beyond which integers are not exact). */
export function intArg(name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return numberArg(name, (x) => Number.isSafeInteger(x) && x >= min && x <= max, max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`);
}

/** A finite number > 0. */
export function numArg(name: string) {
  return numberArg(name, (x) => Number.isFinite(x) && x > 0, 'a finite number > 0');
}

/** A number in [0, 1] (a share or a probability). */
export function shareArg(name: string) {
  return numberArg(name, (x) => x >= 0 && x <= 1, 'a number in [0, 1]');
}

/** Which checkpoint of a variant folder: best (lowest validation loss) or last. */
export function checkpointArg(name: string) {
  return (v: string): CheckpointChoice => {
    if (!(CHECKPOINT_CHOICES as readonly string[]).includes(v)) throw new Error(`${name}: expected ${CHECKPOINT_CHOICES.join(' or ')}, got "${v}"`);
    return v as CheckpointChoice;
  };
}

/** A recall protocol (eval/recall.ts): reference or all-pairs. */
export function protocolArg(name: string) {
  return (v: string): RecallProtocol => {
    if (!(RECALL_PROTOCOLS as readonly string[]).includes(v)) throw new Error(`${name}: expected ${RECALL_PROTOCOLS.join(' or ')}, got "${v}"`);
    return v as RecallProtocol;
  };
}
