/**
 * A small hand-made run folder for the figure, report and browser tests: two variants with
 * three seeds each (so means, stds and seed lists are all present), two subsets, probes,
 * training curves, saliency, embeddings and neighbours with real PNG images.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { imageDataUri } from '../../src/viz/images';
import type { NeighbourQuery, Results, SaliencySeries, TrainingCurve } from '../../src/viz/types';

export const RESULTS: Results = {
  dataset: 'synth',
  backend: 'wasm',
  seed: 0,
  variants: [
    {
      name: 'basic',
      config: { model: { imageTokens: true, lateFusion: false, micl: false } },
      metrics: { 'R@10': 0.3, 'R@100': 0.6, 'R@1000': 0.9 },
      metricsStd: { 'R@10': 0.02, 'R@100': 0.05, 'R@1000': 0.01 },
      subsets: { 'image-heavy': { 'R@10': 0.2, 'R@100': 0.5, 'R@1000': 0.8 }, 'text-heavy': { 'R@10': 0.4, 'R@100': 0.7, 'R@1000': 0.95 } },
      subsetsStd: { 'image-heavy': { 'R@10': 0.03, 'R@100': 0.04, 'R@1000': 0.02 }, 'text-heavy': { 'R@10': 0.01, 'R@100': 0.06, 'R@1000': 0.0 } },
      probes: { 'zero-image': { 'R@100': 0.55 }, 'empty-text': { 'R@100': 0.2 } },
      trainSeconds: 12.5,
      seeds: [
        { seed: 0, metrics: { 'R@10': 0.28, 'R@100': 0.55, 'R@1000': 0.89 } },
        { seed: 1, metrics: { 'R@10': 0.3, 'R@100': 0.6, 'R@1000': 0.9 } },
        { seed: 2, metrics: { 'R@10': 0.32, 'R@100': 0.65, 'R@1000': 0.91 } },
      ],
    },
    {
      name: 'notellm2',
      config: { model: { imageTokens: true, lateFusion: true, micl: true } },
      metrics: { 'R@10': 0.4, 'R@100': 0.75, 'R@1000': 0.97 },
      // No stored std: figures must compute it from `seeds` (sample std of 0.36, 0.40, 0.44 on R@10 = 0.04).
      subsets: { 'image-heavy': { 'R@10': 0.38, 'R@100': 0.74, 'R@1000': 0.96 }, 'text-heavy': { 'R@10': 0.42, 'R@100': 0.76, 'R@1000': 0.98 } },
      probes: { 'zero-image': { 'R@100': 0.5 }, 'empty-text': { 'R@100': 0.45 } },
      trainSeconds: 20.25,
      seeds: [
        { seed: 0, metrics: { 'R@10': 0.36, 'R@100': 0.7, 'R@1000': 0.96 }, subsets: { 'image-heavy': { 'R@100': 0.7 } } },
        { seed: 1, metrics: { 'R@10': 0.4, 'R@100': 0.75, 'R@1000': 0.97 }, subsets: { 'image-heavy': { 'R@100': 0.74 } } },
        { seed: 2, metrics: { 'R@10': 0.44, 'R@100': 0.8, 'R@1000': 0.98 }, subsets: { 'image-heavy': { 'R@100': 0.78 } } },
      ],
    },
  ],
};

export const CURVES: TrainingCurve[] = ['basic', 'notellm2'].map((preset, p) => ({
  preset,
  points: Array.from({ length: 20 }, (_, i) => ({ step: i * 10, loss: 4 * Math.exp(-i / (8 + p)) + 0.5, tau: 0.07 + 0.001 * i })),
}));

export const SALIENCY: SaliencySeries[] = ['basic', 'notellm2'].map((preset, p) => ({
  preset,
  layers: Array.from({ length: 4 }, (_, l) => {
    const sv = 0.05 + 0.05 * l * (p + 1);
    const st = 0.6 - 0.05 * l;
    return { sv, st, so: 1 - sv - st, attnImage: 0.1 + 0.05 * p, attnText: 0.9 - 0.05 * p };
  }),
}));

/** A solid-colour 8×8 PNG as a data URI. */
export function swatch(r: number, g: number, b: number): string {
  const data = new Uint8Array(8 * 8 * 3);
  for (let i = 0; i < 64; i++) data.set([r, g, b], i * 3);
  return imageDataUri({ data, width: 8, height: 8, channels: 3 });
}

export const NEIGHBOURS: NeighbourQuery[] = [
  {
    query: { id: 'n1', title: 'red <apple> & co', category: 'fruit', image: swatch(220, 30, 30) },
    neighbours: [
      { id: 'n2', title: 'cherry', category: 'fruit', image: swatch(200, 20, 40), score: 0.91, relevant: true },
      { id: 'n3', title: 'tomato', category: 'vegetable', image: swatch(230, 60, 30), score: 0.8, relevant: false },
      { id: 'n4', title: 'no picture', score: 0.5 },
    ],
  },
];

export const EMBEDDINGS = {
  preset: 'notellm2',
  points: Array.from({ length: 12 }, (_, i) => ({
    id: `n${i}`,
    category: i % 2 ? 'fruit' : 'animal',
    title: `note ${i}`,
    vector: [i % 2 ? 1 + 0.1 * i : -1 - 0.1 * i, 0.05 * i, (i % 3) * 0.1],
  })),
};

/** Writes the run folder (all five files) under `dir`; returns `dir`. */
export function writeFixtureRun(dir: string, opts: { only?: 'results' } = {}): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'results.json'), JSON.stringify(RESULTS, null, 2));
  if (opts.only !== 'results') {
    writeFileSync(join(dir, 'curves.json'), JSON.stringify({ curves: CURVES }));
    writeFileSync(join(dir, 'saliency.json'), JSON.stringify({ presets: SALIENCY }));
    writeFileSync(join(dir, 'embeddings.json'), JSON.stringify(EMBEDDINGS));
    writeFileSync(join(dir, 'neighbours.json'), JSON.stringify({ queries: NEIGHBOURS }));
  }
  return dir;
}
