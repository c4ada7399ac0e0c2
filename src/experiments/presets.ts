/**
 * Named presets: the ablation variants of docs/method.md's variant table (docs/architecture.md "Ablation
 * switches are configuration"), and the paper's sweeps. Presets are data — partial model
 * configs merged over the defaults by `resolveModelConfig`.
 */
import type { ModelConfig } from '../model/config';
import type { TrainConfig } from '../train/config';

export const PRESETS = {
  /** LLM on text only: no image anywhere. */
  'text-only': { earlyFusion: false, lateFusion: false, micl: false },
  /** Naive end-to-end MLRM: image tokens in the LM (early fusion). */
  basic: { earlyFusion: true, lateFusion: false, micl: false },
  /** Late-fusion gate over a text-only prompt. */
  'late-only': { earlyFusion: false, lateFusion: true, micl: false },
  'late+early': { earlyFusion: true, lateFusion: true, micl: false },
  /** Multimodal in-context learning (n_v and n_m from one pass). */
  micl: { earlyFusion: true, lateFusion: false, micl: true },
  /** The full method: mICL + late fusion. */
  notellm2: { earlyFusion: true, lateFusion: true, micl: true },
} as const satisfies Record<string, ModelConfig>;

export type PresetName = keyof typeof PRESETS;
export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[];

/** Looks a preset up, with an error that lists the valid names. */
export function presetConfig(name: string): ModelConfig {
  if (!(name in PRESETS)) {
    throw new Error(`unknown preset "${name}"; valid presets: ${PRESET_NAMES.join(', ')}`);
  }
  return structuredClone(PRESETS[name as PresetName]) as ModelConfig;
}

/** The presets of the regime map (docs/method.md "Sweeps"): the naive model and the two fixes, alone and together. */
export const REGIME_PRESETS = ['basic', 'micl', 'late+early', 'notellm2'] as const;

/**
 * The regime map's grid: multiples of the run's pretraining budgets (steps) of the LM (text
 * path strength) and of the vision encoder (image path strength); 0 leaves a tower at its
 * random initialisation. The LM axis runs to the default budget (1 200 steps: ×¼ is 300 steps,
 * a weak text path; ×1 one at the `text` subset's ceiling). The smoke grid keeps the corners.
 */
export const REGIME_GRID = { lm: [0, 0.25, 1], vision: [0, 1] } as const;
export const REGIME_SMOKE_GRID = { lm: [0, 1], vision: [0, 1] } as const;

/** The paper's sweeps (docs/method.md "Sweeps"): Q-Former query tokens and mICL loss ratio text:vision. */
export const SWEEPS = {
  queries: [8, 16, 32, 48],
  miclRatio: [
    [1, 1],
    [3, 1],
    [9, 1],
    [19, 1],
  ] as Array<[number, number]>,
  connector: ['mlp', 'qformer'] as const,
  freezeVision: [true, false],
};

export type SweepName = 'queries' | 'micl-ratio' | 'connector' | 'freeze-vision' | 'regime';
export const SWEEP_NAMES: readonly SweepName[] = ['queries', 'micl-ratio', 'connector', 'freeze-vision', 'regime'];

/** Multiples of the run's pretraining steps for the LM and the vision encoder (0: random initialisation). */
export interface PretrainScale {
  lm: number;
  vision: number;
}

/** One variant of a sweep: a preset with a named override. */
export interface SweepVariant {
  name: string;
  preset: string;
  model?: ModelConfig;
  train?: TrainConfig;
  /** Towers pretrained with scaled budgets (the regime sweep). */
  pretrainScale?: PretrainScale;
  /** The sweep cell (statistics compare variants within a cell). */
  group?: string;
  /** The cell's coordinates on the sweep's axes. */
  axes?: Record<string, number>;
}

/** Name of a regime cell: `lm<×>x-vit<×>x`, e.g. lm4x-vit1x (names become folder names). */
export function regimeCell(scale: PretrainScale): string {
  return `lm${scale.lm}x-vit${scale.vision}x`;
}

/**
 * The variants of a paper sweep over the given presets, named `<preset>@<value>` (names become folder names):
 * Q-Former query tokens 8/16/32/48, mICL loss ratio text:vision 1:1…19:1, connector
 * mlp | qformer, frozen or tuned vision encoder; and the regime map, every preset in every
 * cell of REGIME_GRID (REGIME_SMOKE_GRID when `smoke`), named `<preset>@<cell>`.
 */
export function sweepVariants(presets: readonly string[], sweep: string, opts: { smoke?: boolean } = {}): SweepVariant[] {
  for (const p of presets) presetConfig(p);
  const each = <T>(values: readonly T[], make: (v: T) => Omit<SweepVariant, 'preset'>) =>
    presets.flatMap((preset) => values.map((v) => { const r = make(v); return { ...r, preset, name: `${preset}@${r.name}` }; }));
  switch (sweep as SweepName) {
    case 'queries':
      return each(SWEEPS.queries, (q) => ({ name: `q${q}`, model: { connector: { kind: 'qformer', numQueries: q } } }));
    case 'micl-ratio':
      return each(SWEEPS.miclRatio, ([t, v]) => ({ name: `${t}to${v}`, train: { miclWeights: { text: t, vision: v } } }));
    case 'connector':
      return each(SWEEPS.connector, (kind) => ({ name: kind, model: { connector: { kind } } }));
    case 'freeze-vision':
      return each(SWEEPS.freezeVision, (frozen) => ({ name: frozen ? 'frozen-vit' : 'tuned-vit', train: { freezeVision: frozen } }));
    case 'regime': {
      const grid = opts.smoke ? REGIME_SMOKE_GRID : REGIME_GRID;
      const cells = grid.lm.flatMap((lm) => grid.vision.map((vision) => ({ lm, vision })));
      // Cell by cell, so the variants a cell compares sit together in the results.
      return cells.flatMap((scale) => presets.map((preset) => {
        const cell = regimeCell(scale);
        return { name: `${preset}@${cell}`, preset, pretrainScale: scale, group: cell, axes: { lm: scale.lm, vision: scale.vision } };
      }));
    }
    default:
      throw new Error(`unknown sweep "${sweep}"; valid sweeps: ${SWEEP_NAMES.join(', ')}`);
  }
}
