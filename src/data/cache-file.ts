/**
 * The framing of this project's binary cache files (decoded images, frozen vision features):
 * an 8-byte magic, a u32 little-endian header length, the JSON header, then the body.
 */

/** The magic, the header length and the JSON header, ready to be written before the body. */
export function cacheFileHead(magic: string, header: unknown): Buffer {
  if (Buffer.byteLength(magic, 'latin1') !== 8) throw new Error(`cacheFileHead: the magic must be 8 bytes, got "${magic}"`);
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const head = Buffer.alloc(12);
  head.write(magic, 0, 'latin1');
  head.writeUInt32LE(json.length, 8);
  return Buffer.concat([head, json]);
}

/**
 * The JSON header of a cache file and the offset its body starts at; null when the file does
 * not start with `magic`. Throws on a damaged header (callers treat that as a cache miss).
 */
export function readCacheFileHead<T>(buf: Buffer, magic: string): { header: T; bodyStart: number } | null {
  if (buf.length < 12 || buf.toString('latin1', 0, 8) !== magic) return null;
  const length = buf.readUInt32LE(8);
  return { header: JSON.parse(buf.toString('utf8', 12, 12 + length)) as T, bodyStart: 12 + length };
}
