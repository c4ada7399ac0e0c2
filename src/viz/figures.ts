/**
 * Figure specs built from results: pure functions returning plain plotly `{ data, layout }`
 * objects. Nothing here touches a browser, a file or a tensor.
 */
import { pca } from './pca';
import {
  ALL_SUBSET,
  allRecallKeys,
  metricStd,
  metricValue,
  presetColour,
  recallKeys,
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

function pickVariants(results: Results, presets?: string[]): ResultsVariant[] {
  if (!presets) return results.variants;
  const names = results.variants.map((v) => v.name);
  return presets.map((p) => {
    const v = results.variants.find((x) => x.name === p);
    if (!v) throw new Error(`figures: preset "${p}" is not in the results; variants are: ${names.join(', ')}`);
    return v;
  });
}

function variantLabel(v: ResultsVariant): string {
  const n = seedCount(v);
  return n > 1 ? `${v.name} (${n} seeds)` : v.name;
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
    const stds = keys.map((r) => metricStd(v, subset, r.key));
    const trace: Trace = {
      type: 'scatter',
      mode: 'lines+markers',
      name: variantLabel(v),
      legendgroup: v.name,
      x: keys.map((r) => r.k),
      y: ys,
      line: { color: presetColour(v.name, i) },
      marker: { color: presetColour(v.name, i) },
      hovertemplate: `${v.name}<br>R@%{x} = %{y:.3f}<extra></extra>`,
    };
    if (stds.some((s) => s !== undefined)) trace.error_y = { type: 'data', array: stds.map((s) => s ?? NaN), visible: true };
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
 * Ablation bars: groups = subsets, one bar per preset, error bars = standard deviation over
 * seeds (absent for single-seed results).
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
    const stds = subsets.map((s) => metricStd(v, s, metric));
    const t: Trace = {
      type: 'bar',
      name: variantLabel(v),
      x: labels,
      y: subsets.map((s) => metricValue(v, s, metric) ?? NaN),
      marker: { color: presetColour(v.name, i) },
      hovertemplate: `${v.name}<br>%{x}: ${metric} = %{y:.3f}<extra></extra>`,
    };
    if (stds.some((s) => s !== undefined)) t.error_y = { type: 'data', array: stds.map((s) => s ?? NaN), visible: true };
    return t;
  });
  const seeds = Math.max(...variants.map(seedCount));
  return {
    data,
    layout: baseLayout(`${metric} by subset${seeds > 1 ? ` (mean ± std over ${seeds} seeds)` : ''} (${results.dataset})`, {
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
