/**
 * Figure specs built from results: pure functions returning plain plotly `{ data, layout }`
 * objects. Nothing here touches a browser, a file or a tensor.
 */
import { pca } from './pca';
import {
  ALL_SUBSET,
  allRecallKeys,
  isBaseline,
  metricInterval,
  metricStd,
  metricValue,
  presetColour,
  recallKeys,
  resultRowsWithBaselines,
  seedCount,
  subsetNames,
} from './results';
import type { EmbeddingSet, Figure, Layout, Results, ResultsVariant, SaliencySeries, Trace, TrainingCurve } from './types';

const FONT = { family: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif', size: 12 };

function baseLayout(title: string, extra: Layout = {}): Layout {
  return {
    title: { text: title },
    font: FONT,
    height: 420,
    margin: { l: 60, r: 20, t: 60, b: 55 },
    legend: { orientation: 'v' },
    ...extra,
  };
}

/** The rows a figure draws: the named ones in order, else every variant and then the baselines. */
function pickVariants(results: Results, presets?: string[]): ResultsVariant[] {
  const all = resultRowsWithBaselines(results);
  if (!presets) return all;
  const names = all.map((v) => v.name);
  return presets.map((p) => {
    const v = all.find((x) => x.name === p);
    if (!v) throw new Error(`figures: preset "${p}" is not in the results; variants are: ${names.join(', ')}`);
    return v;
  });
}

function variantLabel(v: ResultsVariant): string {
  const n = seedCount(v);
  return n > 1 ? `${v.name} (${n} seeds)` : v.name;
}

/**
 * Error bars of one trace: the 95 % intervals when every point has one (asymmetric), else
 * one standard deviation over seeds where known, else none.
 */
function errorBars(v: ResultsVariant, points: Array<{ subset: string; key: string; y: number }>): Trace['error_y'] | undefined {
  const cis = points.map((p) => metricInterval(v, p.subset, p.key));
  if (cis.some((c) => c !== undefined)) {
    return {
      type: 'data',
      symmetric: false,
      array: points.map((p, i) => (cis[i] ? cis[i]![1] - p.y : NaN)),
      arrayminus: points.map((p, i) => (cis[i] ? p.y - cis[i]![0] : NaN)),
      visible: true,
    };
  }
  const stds = points.map((p) => metricStd(v, p.subset, p.key));
  return stds.some((s) => s !== undefined) ? { type: 'data', array: stds.map((s) => s ?? NaN), visible: true } : undefined;
}

/** Hover text of a point: the value and, when known, its interval. */
function hoverInterval(v: ResultsVariant, subset: string, key: string): string {
  const ci = metricInterval(v, subset, key);
  return ci ? ` [${ci[0].toFixed(3)}, ${ci[1].toFixed(3)}]` : '';
}

export interface RecallCurveOptions {
  /** Subset to draw; 'all' (the default) is the overall `metrics`. */
  subset?: string;
  /** Variants to draw, in this order. Defaults to every variant in the results. */
  presets?: string[];
}

function recallTraces(results: Results, subset: string, presets?: string[]): Trace[] {
  return pickVariants(results, presets).map((v, i) => {
    const source = subset === ALL_SUBSET ? v.metrics : v.subsets?.[subset];
    const keys = source ? recallKeys(source) : [];
    const ys = keys.map((r) => metricValue(v, subset, r.key) ?? NaN);
    const trace: Trace = {
      type: 'scatter',
      mode: 'lines+markers',
      name: variantLabel(v),
      legendgroup: v.name,
      x: keys.map((r) => r.k),
      y: ys,
      // Baselines dashed: what a bag of words or a colour histogram gets, beside the models.
      line: { color: presetColour(v.name, i), ...(isBaseline(results, v) && { dash: 'dash' }) },
      marker: { color: presetColour(v.name, i) },
      text: keys.map((r) => hoverInterval(v, subset, r.key)),
      hovertemplate: `${v.name}<br>R@%{x} = %{y:.3f}%{text}<extra></extra>`,
    };
    const bars = errorBars(v, keys.map((r, j) => ({ subset, key: r.key, y: ys[j] })));
    if (bars) trace.error_y = bars;
    return trace;
  });
}

function recallLayout(results: Results, title: string): Layout {
  const ks = allRecallKeys(results).map((r) => r.k);
  return baseLayout(title, {
    // K spans decades (10 … 1000): a log axis spreads them evenly, as in the paper's tables.
    xaxis: { type: 'log', title: { text: 'K' }, tickvals: ks, ticktext: ks.map(String) },
    yaxis: { title: { text: 'Recall@K' }, range: [0, 1.02] },
  });
}

/** Recall@K against K (log axis), one line per preset, for one subset. */
export function recallCurveFigure(results: Results, opts: RecallCurveOptions = {}): Figure {
  const subset = opts.subset ?? ALL_SUBSET;
  const subsets = subsetNames(results);
  if (!subsets.includes(subset)) throw new Error(`recallCurveFigure: subset "${subset}" is not in the results; subsets are: ${subsets.join(', ')}`);
  return {
    data: recallTraces(results, subset, opts.presets),
    layout: recallLayout(results, `Recall@K — ${subset === ALL_SUBSET ? 'all queries' : subset} (${results.dataset})`),
  };
}

/** One recall-curve figure per subset ('all' first). */
export function recallCurveFigures(results: Results, opts: { presets?: string[] } = {}): { subset: string; figure: Figure }[] {
  return subsetNames(results).map((subset) => ({ subset, figure: recallCurveFigure(results, { subset, presets: opts.presets }) }));
}

/**
 * All subsets in one figure with a drop-down that picks the subset (plotly `updatemenus`
 * toggling trace visibility), for a notebook cell that should not print one figure per subset.
 */
export function recallCurveSelectorFigure(results: Results, opts: { presets?: string[] } = {}): Figure {
  const subsets = subsetNames(results);
  const perSubset = subsets.map((s) => recallTraces(results, s, opts.presets));
  const data: Trace[] = [];
  perSubset.forEach((traces, si) => traces.forEach((t) => data.push({ ...t, visible: si === 0 })));
  const buttons = subsets.map((s, si) => ({
    label: s,
    method: 'update',
    args: [
      { visible: perSubset.flatMap((traces, sj) => traces.map(() => sj === si)) },
      { 'title.text': `Recall@K — ${s === ALL_SUBSET ? 'all queries' : s} (${results.dataset})` },
    ],
  }));
  const layout = recallLayout(results, `Recall@K — all queries (${results.dataset})`);
  layout.updatemenus = [{ type: 'dropdown', buttons, x: 1, xanchor: 'right', y: 1.15, yanchor: 'top', active: 0 }];
  return { data, layout };
}

export interface AblationBarOptions {
  /** Metric on the y axis. Defaults to 'R@100' when present, else the largest K. */
  metric?: string;
  /** Subsets (groups on the x axis). Defaults to 'all' and every subset. */
  subsets?: string[];
  presets?: string[];
}

/** Default metric of ablation bars: R@100 when present, else the largest K recorded. */
export function defaultBarMetric(results: Results): string {
  const keys = allRecallKeys(results);
  if (keys.length === 0) throw new Error('ablationBarsFigure: the results hold no R@K metric');
  return keys.find((k) => k.k === 100)?.key ?? keys[keys.length - 1].key;
}

/**
 * Ablation bars: groups = subsets, one bar per preset (then per baseline, hatched), error
 * bars = the 95 % intervals when the results carry them, else the standard deviation over
 * seeds (absent for single-seed results without intervals).
 */
export function ablationBarsFigure(results: Results, opts: AblationBarOptions = {}): Figure {
  const metric = opts.metric ?? defaultBarMetric(results);
  const all = subsetNames(results);
  const subsets = opts.subsets ?? all;
  for (const s of subsets) if (!all.includes(s)) throw new Error(`ablationBarsFigure: subset "${s}" is not in the results; subsets are: ${all.join(', ')}`);
  const variants = pickVariants(results, opts.presets);
  if (!variants.some((v) => subsets.some((s) => metricValue(v, s, metric) !== undefined))) {
    throw new Error(`ablationBarsFigure: no variant records "${metric}"; recorded: ${allRecallKeys(results).map((k) => k.key).join(', ')}`);
  }
  const labels = subsets.map((s) => (s === ALL_SUBSET ? 'all queries' : s));
  const data = variants.map((v, i): Trace => {
    const ys = subsets.map((s) => metricValue(v, s, metric) ?? NaN);
    const t: Trace = {
      type: 'bar',
      name: variantLabel(v),
      x: labels,
      y: ys,
      marker: { color: presetColour(v.name, i), ...(isBaseline(results, v) && { pattern: { shape: '/' } }) },
      text: subsets.map((s) => hoverInterval(v, s, metric)),
      textposition: 'none',
      hovertemplate: `${v.name}<br>%{x}: ${metric} = %{y:.3f}%{text}<extra></extra>`,
    };
    const bars = errorBars(v, subsets.map((s, j) => ({ subset: s, key: metric, y: ys[j] })));
    if (bars) t.error_y = bars;
    return t;
  });
  const seeds = Math.max(...variants.map(seedCount));
  const withIntervals = variants.some((v) => subsets.some((s) => metricInterval(v, s, metric)));
  const spread = withIntervals ? ` (mean, 95 % interval${seeds > 1 ? ` over queries and ${seeds} seeds` : ' over queries'})` : seeds > 1 ? ` (mean ± std over ${seeds} seeds)` : '';
  return {
    data,
    layout: baseLayout(`${metric} by subset${spread} (${results.dataset})`, {
      barmode: 'group',
      xaxis: { title: { text: 'subset' } },
      yaxis: { title: { text: metric }, range: [0, 1.02] },
    }),
  };
}

const SALIENCY_PARTS = [
  { key: 'sv', label: 'S_v (image → target)', colour: '#d62728' },
  { key: 'st', label: 'S_t (text → target)', colour: '#1f77b4' },
  { key: 'so', label: 'S_o (other)', colour: '#7f7f7f' },
] as const;
const ATTENTION_PARTS = [
  { key: 'attnImage', label: 'attention to image', colour: '#d62728' },
  { key: 'attnText', label: 'attention to text', colour: '#1f77b4' },
] as const;

/** plotly axis id for subplot (row, col), both 0-based, in a grid with `cols` columns. */
function axisId(row: number, col: number, cols: number): string {
  const n = row * cols + col + 1;
  return n === 1 ? '' : String(n);
}

/**
 * S_v, S_t, S_o against layer index for each preset, side by side (one column per preset,
 * shared y). When any layer carries attention mass, a second row shows the plain attention
 * from the final token to image vs text tokens.
 */
export function saliencyFigure(series: SaliencySeries[], opts: { presets?: string[] } = {}): Figure {
  if (series.length === 0) throw new Error('saliencyFigure: no saliency series given');
  const chosen = opts.presets
    ? opts.presets.map((p) => {
        const s = series.find((x) => x.preset === p);
        if (!s) throw new Error(`saliencyFigure: preset "${p}" has no saliency; available: ${series.map((x) => x.preset).join(', ')}`);
        return s;
      })
    : series;
  const cols = chosen.length;
  const withAttention = chosen.some((s) => s.layers.some((l) => l.attnImage !== undefined || l.attnText !== undefined));
  const rows = withAttention ? 2 : 1;
  const gap = 0.04;
  const width = (1 - gap * (cols - 1)) / cols;
  const rowDomains = rows === 2 ? [[0.45, 1], [0, 0.33]] : [[0, 1]];
  const data: Trace[] = [];
  const layout = baseLayout('Modality saliency per layer', { height: rows === 2 ? 560 : 400, annotations: [] as unknown[] });
  const annotations = layout.annotations as unknown[];
  chosen.forEach((s, c) => {
    const layerIdx = s.layers.map((_, i) => i);
    const parts = [SALIENCY_PARTS, ATTENTION_PARTS] as const;
    for (let r = 0; r < rows; r++) {
      const id = axisId(r, c, cols);
      for (const part of parts[r]) {
        const ys = s.layers.map((l) => (l as unknown as Record<string, number | undefined>)[part.key] ?? NaN);
        if (r === 1 && ys.every((y) => Number.isNaN(y))) continue;
        data.push({
          type: 'scatter',
          mode: 'lines+markers',
          name: part.label,
          legendgroup: part.key,
          showlegend: c === 0,
          x: layerIdx,
          y: ys,
          xaxis: `x${id}`,
          yaxis: `y${id}`,
          line: { color: part.colour, dash: r === 1 ? 'dot' : 'solid' },
          marker: { color: part.colour, size: 5 },
          hovertemplate: `${s.preset}<br>layer %{x}: ${part.key} = %{y:.3f}<extra></extra>`,
        });
      }
      layout[`xaxis${id}`] = {
        domain: [c * (width + gap), c * (width + gap) + width],
        anchor: `y${id}`,
        title: { text: r === rows - 1 ? 'layer' : '' },
        dtick: 1,
      };
      layout[`yaxis${id}`] = {
        domain: rowDomains[r],
        anchor: `x${id}`,
        // Columns share a y scale so presets compare at a glance.
        ...(c === 0 ? {} : { matches: `y${axisId(r, 0, cols)}` }),
        showticklabels: c === 0,
        title: { text: c === 0 ? (r === 0 ? 'share of flow' : 'attention mass') : '' },
      };
    }
    annotations.push({
      text: `<b>${escapeText(s.preset)}</b>`,
      showarrow: false,
      xref: 'paper',
      yref: 'paper',
      x: c * (width + gap) + width / 2,
      xanchor: 'center',
      y: 1.0,
      yanchor: 'bottom',
    });
  });
  return { data, layout };
}

function escapeText(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export interface ProjectionOptions {
  /** Seed of the PCA start vector (the result does not depend on it beyond rounding). */
  seed?: number;
  title?: string;
}

/** 2-D PCA projection of note embeddings, one marker trace per category. */
export function projectionFigure(set: EmbeddingSet, opts: ProjectionOptions = {}): Figure {
  if (set.points.length < 2) throw new Error(`projectionFigure: need at least 2 embeddings, got ${set.points.length}`);
  const dim = set.points[0].vector.length;
  const res = pca(set.points.map((p) => p.vector), { k: Math.min(2, dim), seed: opts.seed ?? 0 });
  const categories: string[] = [];
  for (const p of set.points) if (!categories.includes(p.category)) categories.push(p.category);
  const data = categories.map((cat, ci): Trace => {
    const idx = set.points.map((p, i) => (p.category === cat ? i : -1)).filter((i) => i >= 0);
    return {
      type: 'scatter',
      mode: 'markers',
      name: cat,
      x: idx.map((i) => res.coords[i][0]),
      y: idx.map((i) => res.coords[i][1] ?? 0),
      text: idx.map((i) => set.points[i].title ?? set.points[i].id ?? String(i)),
      marker: { size: 7, opacity: 0.8, color: EXTRA_CATEGORY_COLOURS[ci % EXTRA_CATEGORY_COLOURS.length] },
      hovertemplate: `%{text}<br>${escapeText(cat)}<extra></extra>`,
    };
  });
  const pct = (i: number) => (res.varianceRatio[i] === undefined ? '' : ` (${(100 * res.varianceRatio[i]).toFixed(1)}% of variance)`);
  return {
    data,
    layout: baseLayout(opts.title ?? `Note embeddings, PCA${set.preset ? ` — ${set.preset}` : ''}`, {
      xaxis: { title: { text: `PC1${pct(0)}` }, zeroline: false },
      yaxis: { title: { text: `PC2${pct(1)}` }, zeroline: false },
      height: 480,
    }),
  };
}

const EXTRA_CATEGORY_COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/**
 * Training curves: loss (top) and, when logged, the temperature τ (bottom) against step, one
 * line per preset (and seed).
 */
export function trainingCurvesFigure(curves: TrainingCurve[]): Figure {
  if (curves.length === 0) throw new Error('trainingCurvesFigure: no curves given');
  const withTau = curves.some((c) => c.points.some((p) => p.tau !== undefined));
  const data: Trace[] = [];
  const presets: string[] = [];
  curves.forEach((c) => {
    if (!presets.includes(c.preset)) presets.push(c.preset);
    const colour = presetColour(c.preset, presets.indexOf(c.preset));
    const name = c.seed === undefined ? c.preset : `${c.preset} seed ${c.seed}`;
    const x = c.points.map((p) => p.step);
    data.push({ type: 'scatter', mode: 'lines', name, legendgroup: name, x, y: c.points.map((p) => p.loss), xaxis: 'x', yaxis: 'y', line: { color: colour } });
    if (withTau) {
      data.push({
        type: 'scatter', mode: 'lines', name, legendgroup: name, showlegend: false, x,
        y: c.points.map((p) => p.tau ?? NaN), xaxis: 'x2', yaxis: 'y2', line: { color: colour, dash: 'dot' },
      });
    }
  });
  const layout = baseLayout('Training curves', { height: withTau ? 560 : 400 });
  if (withTau) {
    layout.xaxis = { domain: [0, 1], anchor: 'y', matches: 'x2', showticklabels: false };
    layout.yaxis = { domain: [0.45, 1], anchor: 'x', title: { text: 'loss' } };
    layout.xaxis2 = { domain: [0, 1], anchor: 'y2', title: { text: 'step' } };
    layout.yaxis2 = { domain: [0, 0.38], anchor: 'x2', title: { text: 'τ' } };
  } else {
    layout.xaxis = { title: { text: 'step' } };
    layout.yaxis = { title: { text: 'loss' } };
  }
  return { data, layout };
}

/** What a regime heatmap shows per cell (experiments/regimes.ts). */
export const REGIME_QUANTITIES = ['neglect-image', 'neglect-text', 'gain-notellm2', 'gain-micl', 'gain-late+early'] as const;
export type RegimeQuantity = (typeof REGIME_QUANTITIES)[number];

const REGIME_TITLES: Record<RegimeQuantity, string> = {
  'neglect-image': 'basic: image alone / full input',
  'neglect-text': 'basic: text alone / full input',
  'gain-notellm2': 'notellm2 − basic (paired gain)',
  'gain-micl': 'micl − basic (paired gain)',
  'gain-late+early': 'late+early − basic (paired gain)',
};

/**
 * One quantity of the regime map as a heatmap: columns = LM pretraining budget (× the
 * default), rows = vision pretraining budget; each cell's value is written in it, and the
 * hover text gives the 95 % interval (and p and verdict for the paired gains).
 */
export function regimeHeatmapFigure(results: Results, quantity: RegimeQuantity): Figure {
  const cells = results.regimes ?? [];
  if (cells.length === 0) throw new Error('regimeHeatmapFigure: the results hold no regime map (run `notellm2 ablate --sweep regime`)');
  if (!REGIME_QUANTITIES.includes(quantity)) throw new Error(`regimeHeatmapFigure: quantity "${quantity}" is not one of ${REGIME_QUANTITIES.join(', ')}`);
  const lms = [...new Set(cells.map((c) => c.axes.lm))].sort((a, b) => a - b);
  const visions = [...new Set(cells.map((c) => c.axes.vision))].sort((a, b) => a - b);
  const isGain = quantity.startsWith('gain-');
  const valueOf = (c: (typeof cells)[number]) => {
    if (quantity === 'neglect-image') return { ...c.neglectIndex.imageAlone, extra: '' };
    if (quantity === 'neglect-text') return { ...c.neglectIndex.textAlone, extra: '' };
    const g = c.gains[quantity.slice('gain-'.length)];
    return g ? { estimate: g.estimate, lo: g.lo, hi: g.hi, extra: `<br>p ${g.p < 0.001 ? '<0.001' : g.p.toFixed(3)}, ${g.verdict}` } : undefined;
  };
  const z: number[][] = [];
  const hover: string[][] = [];
  const annotations: unknown[] = [];
  visions.forEach((vision, r) => {
    z.push([]);
    hover.push([]);
    lms.forEach((lm, col) => {
      const c = cells.find((x) => x.axes.lm === lm && x.axes.vision === vision);
      const v = c && valueOf(c);
      z[r].push(v ? v.estimate : NaN);
      hover[r].push(v ? `${c!.cell}: ${v.estimate.toFixed(3)} [${v.lo.toFixed(3)}, ${v.hi.toFixed(3)}]${v.extra}` : 'not run');
      if (v) annotations.push({ x: col, y: r, xref: 'x', yref: 'y', showarrow: false, text: `${v.estimate.toFixed(2)}<br>[${v.lo.toFixed(2)}, ${v.hi.toFixed(2)}]`, value: v.estimate });
    });
  });
  const finite = z.flat().filter(Number.isFinite);
  const span = Math.max(1e-9, ...finite.map(Math.abs));
  const [zmin, zmax] = isGain ? [-span, span] : [0, Math.max(1e-9, ...finite)];
  // Light text on the dark ends of the colour scale, dark text in its middle.
  for (const a of annotations as Array<{ value?: number; font?: unknown }>) {
    const t = (a.value! - zmin) / (zmax - zmin);
    a.font = { size: 11, color: (isGain ? Math.abs(t - 0.5) > 0.3 : t < 0.55) ? '#ffffff' : '#222222' };
    delete a.value;
  }
  const trace: Trace = {
    type: 'heatmap',
    x: lms.map((_, i) => i),
    y: visions.map((_, i) => i),
    z,
    hovertext: hover,
    hoverinfo: 'text',
    colorscale: isGain ? 'RdBu' : 'Viridis',
    reversescale: isGain,
    zmin,
    zmax,
    colorbar: { title: { text: isGain ? `Δ ${cells[0].metric}` : 'ratio' } },
  };
  return {
    data: [trace],
    layout: baseLayout(`${REGIME_TITLES[quantity]}, ${cells[0].metric} (${results.dataset})`, {
      xaxis: { title: { text: 'LM pretraining budget (× default)' }, tickvals: lms.map((_, i) => i), ticktext: lms.map((x) => `×${x}`) },
      yaxis: { title: { text: 'vision pretraining budget (× default)' }, tickvals: visions.map((_, i) => i), ticktext: visions.map((x) => `×${x}`) },
      annotations,
      height: 360,
    }),
  };
}
