/**
 * A query note's image and title beside its top-k neighbours, as an HTML fragment: it renders
 * the same in the report and in a notebook (`showHtml`), and the images are the notes' own
 * pictures as data URIs. Neighbours that are the query's ground-truth related note get a green
 * frame.
 *
 * Laid out as a table with presentational attributes (image size, frame colour as the cell's
 * `bgcolor`), not with CSS: an untrusted notebook view drops `<style>` blocks, and the classic
 * notebook drops `style` attributes as well, while a table row stays a row and `width`/
 * `height`/`bgcolor` stay what they say. Inline styles only refine it where they are kept.
 */
import { escapeHtml } from './html';
import type { Neighbour, NeighbourQuery, NoteView } from './types';

const SIZE = 96;
/**
 * Cell width for the `width` attribute: the picture plus the cell padding front ends impose
 * (0.5em in the classic Notebook, whose Bootstrap CSS counts padding inside the width).
 */
const CELL = SIZE + 14;
const FRAME: Record<string, string> = { query: '#333333', hit: '#2ca02c', miss: '#cccccc', neighbour: '#cccccc' };

function imageCell(note: NoteView | Neighbour, cls: string): string {
  const frame = FRAME[cls];
  const content = note.image
    ? `<img src="${escapeHtml(note.image)}" width="${SIZE}" height="${SIZE}" alt="${escapeHtml(note.title)}" ` +
      `style="display:block;width:${SIZE}px;height:${SIZE}px;object-fit:contain;image-rendering:pixelated;background:#fff">`
    : `<i>no image</i>`;
  return (
    `<td class="${cls}" data-note-id="${escapeHtml(note.id)}" bgcolor="${frame}" width="${CELL}" height="${CELL}" align="center" valign="middle" ` +
    `style="background:${frame};box-sizing:content-box;width:${SIZE}px;height:${SIZE}px;padding:3px;text-align:center;vertical-align:middle;color:#999">${content}</td>`
  );
}

function captionCell(html: string): string {
  // As wide as the picture's cell, so the frame (that cell's background) hugs the picture.
  return `<td align="center" valign="top" width="${CELL}" style="box-sizing:content-box;width:${SIZE}px;padding:4px 3px;text-align:center;vertical-align:top;font-size:12px;background:transparent">${html}</td>`;
}

/** One query: its picture, an arrow, then the neighbours in rank order; captions below. */
export function neighboursHtml(q: NeighbourQuery, opts: { k?: number } = {}): string {
  const shown = q.neighbours.slice(0, opts.k ?? q.neighbours.length);
  const cls = (n: Neighbour) => (n.relevant === true ? 'hit' : n.relevant === false ? 'miss' : 'neighbour');
  const images = [imageCell(q.query, 'query'), ...shown.map((n) => imageCell(n, cls(n)))];
  const captions = [
    `<b>query</b><br>${escapeHtml(q.query.title)}${q.query.category ? `<br><i>${escapeHtml(q.query.category)}</i>` : ''}`,
    ...shown.map((n, i) => {
      const score = n.score === undefined ? '' : ` · ${n.score.toFixed(3)}`;
      const cat = n.category ? `<br><i>${escapeHtml(n.category)}</i>` : '';
      return `#${i + 1}${score}<br>${escapeHtml(n.title)}${cat}`;
    }),
  ].map(captionCell);
  const arrow = `<td rowspan="2" align="center" valign="middle" style="font-size:20px;color:#888;padding:0 6px;background:transparent">→</td>`;
  const row = (cells: string[], withArrow: boolean) =>
    `<tr valign="top" style="background:transparent">${cells[0]}${withArrow ? arrow : ''}${cells.slice(1).join('')}</tr>`;
  return (
    `<table class="notellm2-gallery" border="0" cellspacing="6" cellpadding="3" ` +
    `style="border-collapse:separate;border-spacing:6px 2px;margin:0.5em 0;font-size:12px;table-layout:auto">` +
    `<tbody>${row(images, true)}${row(captions, false)}</tbody></table>`
  );
}

/** Several queries, one gallery row each. */
export function neighbourGalleryHtml(queries: NeighbourQuery[], opts: { k?: number } = {}): string {
  return queries.map((q) => neighboursHtml(q, opts)).join('\n');
}
