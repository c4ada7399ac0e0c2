/**
 * GPT-2's reversible byte ↔ unicode mapping used by byte-level BPE (and by the Hugging Face
 * `ByteLevel` pre-tokenizer and decoder). Every one of the 256 byte values gets one printable
 * character, so a token is a plain string while still standing for an exact byte sequence:
 * printable Latin-1 bytes (`!`..`~`, `¡`..`¬`, `®`..`ÿ`) map to themselves, the other 68
 * (controls, space, soft hyphen, …) to U+0100 onwards in byte order (space → `Ġ`, `\n` → `Ċ`).
 * All 256 characters are in the BMP, so one byte is one UTF-16 code unit of a token string.
 */

function buildByteToUnicode(): string[] {
  const keep = (b: number): boolean =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table = new Array<string>(256);
  let next = 0;
  for (let b = 0; b < 256; b++) {
    table[b] = String.fromCharCode(keep(b) ? b : 256 + next++);
  }
  return table;
}

/** `BYTE_TO_UNICODE[b]` is the one-character token string standing for byte `b`. */
export const BYTE_TO_UNICODE: readonly string[] = buildByteToUnicode();

/** Inverse of {@link BYTE_TO_UNICODE}: UTF-16 code unit → byte value (−1 where none). */
const UNICODE_TO_BYTE: Int16Array = (() => {
  const inv = new Int16Array(0x200).fill(-1);
  BYTE_TO_UNICODE.forEach((ch, b) => {
    inv[ch.charCodeAt(0)] = b;
  });
  return inv;
})();

const utf8 = new TextEncoder();
// Lossy like the reference decoder (invalid UTF-8 becomes U+FFFD); a leading BOM is kept, so
// decode(encode(x)) === x holds for every string x.
const utf8Decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

/** UTF-8 bytes of `text`, each written as its byte-level character (`' hi'` → `'Ġhi'`). */
export function toByteLevel(text: string): string {
  const bytes = utf8.encode(text);
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += BYTE_TO_UNICODE[bytes[i]];
  return out;
}

/**
 * Appends the bytes a byte-level token string stands for. Returns false if the string holds a
 * character outside the 256-character alphabet (a token that is not byte-level).
 */
export function pushByteLevelBytes(token: string, out: number[]): boolean {
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    const b = c < 0x200 ? UNICODE_TO_BYTE[c] : -1;
    if (b < 0) return false;
    out.push(b);
  }
  return true;
}

/** UTF-8 bytes → string, replacing invalid sequences with U+FFFD. */
export function decodeUtf8(bytes: readonly number[]): string {
  return utf8Decoder.decode(Uint8Array.from(bytes));
}
