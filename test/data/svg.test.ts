/**
 * SVGs from drawing programs of many eras decode at the size the pipeline needs, whatever canvas
 * they declare (huge viewBoxes, pt/mm/in units, percentages, DOCTYPEs, gzip); the pixel limit
 * guards what is actually rasterised; hostile files (external references, XXE, billion laughs,
 * decompression bombs plain and embedded) are refused or rendered harmlessly, quickly. And the
 * dataset's decode check decodes each file once, remembering the outcome.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, utimesSync, writeFileSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync, gzipSync } from 'node:zlib';
import { initBackend } from '../../src/backend';
import { checkImages, decodeImage, findSvgRoot, probeImage, svgAtSize } from '../../src/data/images';

const tmp = mkdtempSync(join(tmpdir(), 'notellm2-svg-'));
before(async () => {
  await initBackend();
});
after(() => rmSync(tmp, { recursive: true, force: true }));

function file(name: string, data: string | Buffer): string {
  const p = join(tmp, name);
  writeFileSync(p, data);
  return p;
}

const px = (rgb: Uint8Array, size: number, x: number, y: number) => [...rgb.subarray((y * size + x) * 3, (y * size + x) * 3 + 3)];
const RED = [255, 0, 0];
const WHITE = [255, 255, 255];

/** The left half of the canvas red (in the canvas's own user units), the right half left blank. */
const leftHalf = (w: number, h: number) => `<rect x="0" y="0" width="${w / 2}" height="${h}" fill="#ff0000"/>`;

test('findSvgRoot: past the XML declaration, comments and a DOCTYPE whose internal subset holds ">" and "<svg"', () => {
  const text =
    '\ufeff<?xml version="1.0" standalone="no"?>\n<!-- <svg width="1"> in a comment -->\n' +
    '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd" [\n' +
    '  <!ENTITY ns_svg "http://www.w3.org/2000/svg"> <!-- <svg> -->\n  <!ENTITY st "fill:#f00;stroke:#000>">\n]>\n' +
    '<svg:svg xmlns:svg="http://www.w3.org/2000/svg" width=\'10mm\' height = "20mm" data-x="a>b">\n<svg:g/></svg:svg>';
  const latin1 = Buffer.from(text, 'utf8').toString('latin1');
  const root = findSvgRoot(latin1)!;
  assert.ok(root, 'root found');
  assert.equal(root.name, 'svg:svg');
  assert.deepEqual(root.attrs.map((a) => [a.name, a.value]), [['xmlns:svg', 'http://www.w3.org/2000/svg'], ['width', '10mm'], ['height', '20mm'], ['data-x', 'a>b']]);
  assert.equal(latin1.slice(root.end, root.end + 8), '\n<svg:g/');
  assert.equal(findSvgRoot('<html><svg/></html>'), null, 'the root must be an svg element');
});

test('svgAtSize: the root gets the pixel size (short side = size) and a viewBox; everything else is untouched', () => {
  const out = (svg: string) => svgAtSize(Buffer.from(svg), 32)!.toString('latin1');
  // A huge A4 canvas in 0.01 mm units, no width/height.
  assert.equal(out('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 20990 29700"><g/></svg>'), '<svg xmlns="http://www.w3.org/2000/svg" width="32" height="45" viewBox="0 0 20990 29700"><g/></svg>');
  // pt without a viewBox: the viewBox is the declared size in CSS pixels (1pt = 4/3 px).
  assert.equal(out('<svg width="1683.0000pt" height="2380.0000pt" id="svg2"/>'), '<svg id="svg2" width="32" height="45" viewBox="0 0 2244 3173.333333333333"/>');
  // A percentage width takes its aspect from the viewBox.
  assert.equal(out('<svg width="100%" height="100%" viewBox="0 0 60 30"></svg>'), '<svg width="64" height="32" viewBox="0 0 60 30"></svg>');
  // No usable size at all: rendered as declared.
  assert.equal(svgAtSize(Buffer.from('<svg width="100%"><g/></svg>'), 32), null);
});

test('a clip-art canvas declared huge (viewBox 20990 × 29700, no width/height) decodes at 32 px, drawn where it belongs', async () => {
  const p = file('a4.svg', `<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 29700 29700">${leftHalf(29700, 29700)}</svg>`);
  const rgb = await decodeImage(p, 32);
  assert.deepEqual(px(rgb, 32, 4, 16), RED);
  assert.deepEqual(px(rgb, 32, 27, 16), WHITE);
});

for (const [unit, perPx] of [['pt', 3 / 4], ['mm', 25.4 / 96], ['in', 1 / 96], ['cm', 2.54 / 96], ['pc', 1 / 16]] as const) {
  test(`an Inkscape-era SVG sized in ${unit} without a viewBox renders its user units as CSS pixels, at 32 px`, async () => {
    // 400 CSS px square, declared in the unit; the drawing in user units (px) fills the left half.
    const n = 400 * perPx;
    const p = file(
      `inkscape-${unit}.svg`,
      '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<!-- Created with Inkscape (http://www.inkscape.org/) -->\n' +
        '<svg xmlns:svg="http://www.w3.org/2000/svg" xmlns="http://www.w3.org/2000/svg" xmlns:sodipodi="http://inkscape.sourceforge.net/DTD/sodipodi-0.dtd" ' +
        `xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape" width="${n.toFixed(4)}${unit}" height="${n.toFixed(4)}${unit}" id="svg2" sodipodi:version="0.32" inkscape:version="0.40">\n` +
        `<g id="layer1">${leftHalf(400, 400)}</g>\n</svg>\n`,
    );
    const rgb = await decodeImage(p, 32);
    assert.deepEqual(px(rgb, 32, 4, 16), RED);
    assert.deepEqual(px(rgb, 32, 27, 16), WHITE);
  });
}

test('gzip-compressed SVG (.svgz) with a huge canvas decodes; one expanding beyond 32 MB is refused', async () => {
  const p = file('big.svgz', gzipSync(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 50000 50000">${leftHalf(50000, 50000)}</svg>`));
  assert.deepEqual(px(await decodeImage(p, 16), 16, 2, 8), RED);
  const bomb = file('bomb.svgz', gzipSync(Buffer.concat([Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8">'), Buffer.alloc(40 * 2 ** 20, 0x20), Buffer.from('</svg>')])));
  assert.match((await probeImage(bomb, 'decode'))!, /compressed SVG does not expand within 33554432 bytes/);
});

test('the pixel limit guards what is rasterised: an SVG 1 × 10^7 units drawn at 32 px on its short side is refused', async () => {
  const p = file('sliver.svg', '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 10000000"><rect width="1" height="10" fill="red"/></svg>');
  assert.match((await probeImage(p, 'decode'))!, /SVG drawn at 32×320000000 pixels \(short side 32\) exceeds the pixel limit/);
});

/** A PNG whose header declares w×h 8-bit grey pixels (its data is one tiny row: only the header matters). */
function declaredPng(w: number, h: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const out = Buffer.alloc(8 + data.length + 4);
    out.writeUInt32BE(data.length, 0);
    td.copy(out, 4);
    out.writeUInt32BE(crc(td), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8;
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(w + 1))), chunk('IEND', Buffer.alloc(0))]);
}

test('decompression bombs: a PNG declaring 20000 × 20000 pixels, alone or embedded in an SVG, is refused from its header at once', async () => {
  const bomb = declaredPng(20000, 20000);
  const png = file('bomb.png', bomb);
  const t0 = performance.now();
  assert.match((await probeImage(png, 'header'))!, /exceeds pixel limit/);
  assert.match((await probeImage(png, 'decode'))!, /exceeds pixel limit/);
  const embedded = file(
    'embeds-bomb.svg',
    `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="8" height="8"><image width="8" height="8" xlink:href="data:image/png;base64,${bomb.toString('base64').replace(/(.{76})/g, '$1\n')}"/></svg>`,
  );
  assert.match((await probeImage(embedded, 'decode'))!, /embedded images \(data: URIs\) hold 20000×20000 pixels/);
  // The same bomb inside an embedded SVG inside the SVG.
  const inner = `<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><image width="8" height="8" href="data:image/png;base64,${bomb.toString('base64')}"/></svg>`;
  const nested = file('nested-bomb.svg', `<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><image width="8" height="8" href="data:image/svg+xml;base64,${Buffer.from(inner).toString('base64')}"/></svg>`);
  assert.match((await probeImage(nested, 'decode'))!, /embedded images/);
  assert.ok(performance.now() - t0 < 2000, `refused within 2 s (${(performance.now() - t0).toFixed(0)} ms)`);
  // A small embedded raster is drawn.
  const red = declaredPng(1, 1);
  const ok = file('embeds-small.svg', `<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><image width="8" height="8" href="data:image/png;base64,${red.toString('base64')}"/></svg>`);
  assert.equal(await probeImage(ok, 'decode'), null);
});

test('external references render as nothing; XXE and billion laughs are refused', async () => {
  const secret = file('secret.png', readFileSync(join(__dirname, '../fixtures/good/images/n1.png')));
  const ext = file(
    'external.svg',
    `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="8" height="8"><image xlink:href="file://${secret}" width="8" height="8"/><image href="${secret}" width="8" height="8"/><image href="http://127.0.0.1:9/x.png" width="8" height="8"/></svg>`,
  );
  const rgb = await decodeImage(ext, 8);
  assert.ok(rgb.every((v) => v === 255), 'nothing outside the file is drawn');
  const xxe = file('xxe.svg', `<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/hostname">]><svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><text y="8">&xxe;</text></svg>`);
  assert.match((await probeImage(xxe, 'decode'))!, /xxe/);
  const levels = Array.from({ length: 9 }, (_, i) => `<!ENTITY l${i + 1} "${`&l${i};`.repeat(10)}">`).join('');
  const laughs = file('laughs.svg', `<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY l0 "ha">${levels}]><svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><text y="8">&l9;</text></svg>`);
  const t0 = performance.now();
  assert.match((await probeImage(laughs, 'decode'))!, /amplification|entity/i);
  assert.ok(performance.now() - t0 < 2000);
});

test('checkImages decodes each file once: later calls read the remembered outcome; a changed file is decoded again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'notellm2-check-'));
  const cache = join(dir, 'cache');
  try {
    const good = join(dir, 'good.svg');
    const bad = join(dir, 'bad.png');
    writeFileSync(good, `<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8">${leftHalf(8, 8)}</svg>`);
    writeFileSync(bad, declaredPng(4, 4).subarray(0, 30));
    const first = await checkImages(dir, [good, bad], 32, { cacheDir: cache });
    assert.equal(first.get(good), null);
    assert.match(first.get(bad)!, /./);
    const [cacheFile] = readdirSync(cache);
    const stored = JSON.parse(readFileSync(join(cache, cacheFile), 'utf8'));
    assert.deepEqual(Object.keys(stored.files).sort(), ['bad.png', 'good.svg']);
    // Plant a different remembered outcome: an unchanged file is not decoded again.
    stored.files['good.svg'][2] = 'remembered';
    writeFileSync(join(cache, cacheFile), JSON.stringify(stored));
    assert.equal((await checkImages(dir, [good], 32, { cacheDir: cache })).get(good), 'remembered');
    // Touch it: decoded again.
    utimesSync(good, new Date(), new Date(Date.now() + 5000));
    assert.equal((await checkImages(dir, [good], 32, { cacheDir: cache })).get(good), null);
    // Another size is another check.
    assert.equal(readdirSync(cache).length, 1);
    await checkImages(dir, [good], 16, { cacheDir: cache });
    assert.equal(readdirSync(cache).length, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
