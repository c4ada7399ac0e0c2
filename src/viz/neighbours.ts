/**
 * A query note's image and title beside its top-k neighbours, as an HTML fragment: it renders
 * the same in the report and in a notebook (`showHtml`), and the images are the notes' own
 * pictures as data URIs. Neighbours that are the query's ground-truth related note get a green
 * frame.
 */
import { escapeHtml } from './html';
import type { Neighbour, NeighbourQuery, NoteView } from './types';

function card(note: NoteView | Neighbour, cls: string, caption: string): string {
  const img = note.image
    ? `<img src="${escapeHtml(note.image)}" alt="${escapeHtml(note.title)}">`
    : `<div style="width:96px;height:96px;border:2px dashed #ccc;display:flex;align-items:center;justify-content:center;color:#999">no image</div>`;
  return `<figure class="${cls}" data-note-id="${escapeHtml(note.id)}">${img}<figcaption>${caption}</figcaption></figure>`;
}

/** One query row: query card, an arrow, then the neighbours in rank order. */
export function neighboursHtml(q: NeighbourQuery, opts: { k?: number } = {}): string {
  const shown = q.neighbours.slice(0, opts.k ?? q.neighbours.length);
  const qCap = `<b>query</b><br>${escapeHtml(q.query.title)}${q.query.category ? `<br><i>${escapeHtml(q.query.category)}</i>` : ''}`;
  const cards = shown.map((n, i) => {
    const cls = n.relevant === true ? 'hit' : n.relevant === false ? 'miss' : 'neighbour';
    const score = n.score === undefined ? '' : ` · ${n.score.toFixed(3)}`;
    const cat = n.category ? `<br><i>${escapeHtml(n.category)}</i>` : '';
    return card(n, cls, `#${i + 1}${score}<br>${escapeHtml(n.title)}${cat}`);
  });
  return `<div class="notellm2-gallery">${card(q.query, 'query', qCap)}<span class="sep">→</span>${cards.join('')}</div>`;
}

/** Several queries, one gallery row each. */
export function neighbourGalleryHtml(queries: NeighbourQuery[], opts: { k?: number } = {}): string {
  return queries.map((q) => neighboursHtml(q, opts)).join('\n');
}
