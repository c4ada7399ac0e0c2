/**
 * The built-in benchmark `synth`: notes whose text and image carry different information,
 * so that a model that neglects the image (docs/method.md "Reported outcomes") measurably fails.
 *
 * Each note has two independent latents:
 *   - a topic (text side): title, body and hashtags are drawn from the topic's words plus
 *     filler and noise words; a share of notes has a short or empty body;
 *   - a visual style (image side): shape × colour × pattern, drawn with jitter
 *     (synth-image.ts). Text mentions visual attributes only with probability
 *     `mentionVisual`.
 * Users have interests over topics, over visual styles, or over both; their engagements form
 * a behaviour log, and the co-occurrence pair builder (pairs.ts) turns it into related pairs.
 * Each pair is labelled with what its notes share:
 *   `visual`  same style, different topic  → solvable only from the image
 *   `text`    same topic, different style  → solvable only from the text
 *   `both`    same topic and style
 *   `neither` nothing (pairs from noise engagements)
 *
 * Topics and styles are drawn independently except that each topic has a few "signature"
 * styles that a share of its notes use (so `both` pairs exist); a style is the signature of
 * at most one topic, so the text of a visual pair still says nothing about its partner.
 */
import { Rng } from '../backend/rng';
import { generatedDataset, type BuiltDataset } from './summary';
import { buildPairs, resolvePairBuilderConfig, type EngagementEvent, type PairBuilderConfig, type PairBuildStats } from './pairs';
import type { Note, Pair } from './schema';
import { resolveSplitConfig, splitByNotes, type SplitConfig, type SplitResult } from './splits';
import {
  ALL_COLOURS,
  ALL_PATTERNS,
  ALL_SHAPES,
  drawStyleSvg,
  renderSvgPng,
  styleKey,
  type Colour,
  type Pattern,
  type Shape,
  type VisualStyle,
} from './synth-image';
import { COLOUR_WORDS, FILLER, PATTERN_WORDS, SHAPE_WORDS, TOPICS } from './synth-vocab';
import { builtinDatasetDir, readDatasetMeta, writeReferenceDataset } from './write';

export const SYNTH_LABELS = ['visual', 'text', 'both', 'neither'] as const;
export type SynthLabel = (typeof SYNTH_LABELS)[number];

export interface SynthConfig {
  /** Number of notes. Defaults to 12 000 (800 when NOTELLM2_SMOKE=1). */
  notes?: number;
  /** Seed of everything (latents, text, users, images, split). Defaults to 1. */
  seed?: number;
  /** Number of topics, taken from the built-in vocabularies (at most 20). Defaults to 20. */
  topics?: number;
  /** Shapes used. Defaults to circle, square, triangle, star, cross. */
  shapes?: Shape[];
  /** Colours used. Defaults to red, green, blue, yellow, purple, cyan. */
  colours?: Colour[];
  /** Patterns used. Defaults to solid, striped, outline. */
  patterns?: Pattern[];
  /** Share of notes whose style is one of their topic's signature styles. Defaults to 0.3. */
  signatureShare?: number;
  /** Signature styles per topic. Defaults to 2. */
  signatureStyles?: number;
  /** Probability that a note's text names some of its visual attributes. Defaults to 0.1. */
  mentionVisual?: number;
  /** Share of notes with an empty body. Defaults to 0.2. */
  emptyBody?: number;
  /** Share of notes with a short body (2–5 words). Defaults to 0.25. */
  shortBody?: number;
  /** Share of body/title words that are words of another topic (text noise). Defaults to 0.1. */
  noiseWords?: number;
  /** Side of the square PNG covers, pixels. Defaults to 64. */
  imageSize?: number;
  /** Std of the Gaussian pixel noise (0..255 units). Defaults to 8. */
  pixelNoise?: number;
  /** Number of users. Defaults to 1.5 × notes. */
  users?: number;
  /** Shares of user kinds: interest in a topic, a style, or a (topic, style) pair. Defaults to 0.4 / 0.4 / 0.2. */
  userMix?: { text: number; visual: number; both: number };
  /** Probability that an engagement is with a uniformly random note. Defaults to 0.05. */
  noiseEngagement?: number;
  /** Engagements per user, [min, max] inclusive. Defaults to [4, 12]. */
  engagements?: [number, number];
  /** A user's engagements spread over this many days (the pair window is 7 by default). Defaults to 14. */
  activityDays?: number;
  /** Pair builder settings. Defaults to pairs.ts's (7-day window, top-10, quantiles 0–0.99). */
  pairs?: PairBuilderConfig;
  /**
   * Split settings. Defaults to SYNTH_SPLIT (test 0.6, val 0.06 of the notes; test 0.2, val
   * 0.1 when NOTELLM2_SMOKE=1).
   */
  split?: SplitConfig;
}

export const SYNTH_DEFAULT_NOTES = 12_000;
export const SYNTH_SMOKE_NOTES = 800;

/**
 * The default split of the full-size benchmark. The test split is the larger part so that
 * each pair label (`visual`, `text`, `both`) has enough queries under the reference protocol
 * for a 95 % interval of a few points at R@10 (docs/method.md "Uncertainty and paired
 * comparisons"): with seed 1, 7 200 test notes give 3 238 kept pairs — visual 1 092, text
 * 1 055, both 847 — over a pool of 3 962. The training split keeps 4 080 notes and 9 145
 * pairs, more than a default run's 240 steps × 16 pairs use.
 */
export const SYNTH_SPLIT = { testFraction: 0.6, valFraction: 0.06 } as const;

export type ResolvedSynthConfig = Required<Omit<SynthConfig, 'pairs' | 'split'>> & { pairs: Required<PairBuilderConfig>; split: Required<Omit<SplitConfig, 'groupOf'>> };

function definedFields<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Applies defaults (one place) and checks every field; errors list the valid values. */
export function resolveSynthConfig(cfg: SynthConfig = {}, env: NodeJS.ProcessEnv = process.env): ResolvedSynthConfig {
  const smoke = env.NOTELLM2_SMOKE === '1';
  const seed = cfg.seed ?? 1;
  const notes = cfg.notes ?? (smoke ? SYNTH_SMOKE_NOTES : SYNTH_DEFAULT_NOTES);
  const out: ResolvedSynthConfig = {
    notes,
    seed,
    topics: cfg.topics ?? 20,
    shapes: cfg.shapes ?? ['circle', 'square', 'triangle', 'star', 'cross'],
    colours: cfg.colours ?? ['red', 'green', 'blue', 'yellow', 'purple', 'cyan'],
    patterns: cfg.patterns ?? ['solid', 'striped', 'outline'],
    signatureShare: cfg.signatureShare ?? 0.3,
    signatureStyles: cfg.signatureStyles ?? 2,
    mentionVisual: cfg.mentionVisual ?? 0.1,
    emptyBody: cfg.emptyBody ?? 0.2,
    shortBody: cfg.shortBody ?? 0.25,
    noiseWords: cfg.noiseWords ?? 0.1,
    imageSize: cfg.imageSize ?? 64,
    pixelNoise: cfg.pixelNoise ?? 8,
    users: cfg.users ?? Math.round(1.5 * notes),
    userMix: cfg.userMix ?? { text: 0.4, visual: 0.4, both: 0.2 },
    noiseEngagement: cfg.noiseEngagement ?? 0.05,
    engagements: cfg.engagements ?? [4, 12],
    activityDays: cfg.activityDays ?? 14,
    pairs: resolvePairBuilderConfig(cfg.pairs),
    // Fields left undefined (e.g. CLI flags not given) keep the defaults.
    split: (({ groupOf: _, ...rest }) => rest)(resolveSplitConfig({ seed, ...(smoke ? {} : SYNTH_SPLIT), ...definedFields(cfg.split ?? {}) })),
  };
  const topicNames = Object.keys(TOPICS);
  if (!Number.isInteger(out.notes) || out.notes < 10) throw new Error(`synth: notes must be an integer >= 10, got ${out.notes}`);
  if (!Number.isInteger(out.topics) || out.topics < 2 || out.topics > topicNames.length) {
    throw new Error(`synth: topics must be an integer in [2, ${topicNames.length}], got ${out.topics}`);
  }
  const checkList = <T extends string>(name: string, list: readonly T[], valid: readonly string[]) => {
    if (list.length === 0) throw new Error(`synth: ${name} must not be empty; valid values: ${valid.join(', ')}`);
    for (const v of list) if (!valid.includes(v)) throw new Error(`synth: unknown ${name} value "${v}"; valid values: ${valid.join(', ')}`);
    if (new Set(list).size !== list.length) throw new Error(`synth: ${name} lists a value twice`);
  };
  checkList('shapes', out.shapes, ALL_SHAPES);
  checkList('colours', out.colours, ALL_COLOURS);
  checkList('patterns', out.patterns, ALL_PATTERNS);
  for (const k of ['signatureShare', 'mentionVisual', 'emptyBody', 'shortBody', 'noiseWords', 'noiseEngagement'] as const) {
    if (!(out[k] >= 0 && out[k] <= 1)) throw new Error(`synth: ${k} must be in [0, 1], got ${out[k]}`);
  }
  if (out.emptyBody + out.shortBody > 1) throw new Error(`synth: emptyBody + shortBody must be <= 1, got ${out.emptyBody + out.shortBody}`);
  const nStyles = out.shapes.length * out.colours.length * out.patterns.length;
  if (out.topics * out.signatureStyles > nStyles) {
    throw new Error(`synth: topics × signatureStyles (${out.topics * out.signatureStyles}) exceeds the ${nStyles} styles; a style is the signature of one topic at most`);
  }
  if (!Number.isInteger(out.imageSize) || out.imageSize < 16) throw new Error(`synth: imageSize must be an integer >= 16, got ${out.imageSize}`);
  const [lo, hi] = out.engagements;
  if (!(Number.isInteger(lo) && Number.isInteger(hi) && lo >= 2 && hi >= lo)) {
    throw new Error(`synth: engagements must be [min, max] integers with 2 <= min <= max, got [${lo}, ${hi}]`);
  }
  const mix = out.userMix;
  if (![mix.text, mix.visual, mix.both].every((x) => x >= 0) || mix.text + mix.visual + mix.both <= 0) {
    throw new Error(`synth: userMix shares must be >= 0 and not all 0, got ${JSON.stringify(mix)}`);
  }
  if (!(out.users >= 1)) throw new Error(`synth: users must be >= 1, got ${out.users}`);
  return out;
}

/** The latents behind one synthetic note. */
export interface SynthLatent {
  topic: string;
  style: VisualStyle;
}

export interface SynthData {
  config: ResolvedSynthConfig;
  notes: Note[];
  latents: Map<string, SynthLatent>;
  events: EngagementEvent[];
  pairStats: PairBuildStats;
  /** Split notes and labelled pairs. */
  split: SplitResult;
}

/** What two notes share. */
export function labelSynthPair(a: SynthLatent, b: SynthLatent): SynthLabel {
  const sameTopic = a.topic === b.topic;
  const sameStyle = styleKey(a.style) === styleKey(b.style);
  return sameTopic && sameStyle ? 'both' : sameTopic ? 'text' : sameStyle ? 'visual' : 'neither';
}

const noteId = (i: number, n: number): string => `s${String(i).padStart(Math.max(5, String(n - 1).length), '0')}`;

/** Draws the latents: topics uniformly; styles uniformly or, for a share, from the topic's signatures. */
function drawLatents(cfg: ResolvedSynthConfig, rng: Rng): SynthLatent[] {
  const topics = Object.keys(TOPICS).slice(0, cfg.topics);
  const styles: VisualStyle[] = [];
  for (const shape of cfg.shapes) for (const colour of cfg.colours) for (const pattern of cfg.patterns) styles.push({ shape, colour, pattern });
  const pool = rng.shuffle([...styles.keys()]);
  const signature = new Map(topics.map((t, i) => [t, pool.slice(i * cfg.signatureStyles, (i + 1) * cfg.signatureStyles)]));
  return Array.from({ length: cfg.notes }, () => {
    const topic = rng.pick(topics);
    const sig = signature.get(topic)!;
    const s = sig.length > 0 && rng.next() < cfg.signatureShare ? rng.pick(sig) : rng.int(styles.length);
    return { topic, style: styles[s] };
  });
}

/** Title, body and hashtags of one note from its latents. */
function writeText(latent: SynthLatent, cfg: ResolvedSynthConfig, rng: Rng, topicNames: string[]): { title: string; content: string; topics: string[] } {
  const own = TOPICS[latent.topic];
  const word = (): string => {
    const r = rng.next();
    if (r < cfg.noiseWords) return rng.pick(TOPICS[rng.pick(topicNames)]); // may hit its own topic: fine
    if (r < cfg.noiseWords + 0.5) return rng.pick(own);
    return rng.pick(FILLER);
  };
  const titleWords = [rng.pick(own), ...Array.from({ length: 1 + rng.int(3) }, word)];
  rng.shuffle(titleWords);

  const r = rng.next();
  const bodyLength = r < cfg.emptyBody ? 0 : r < cfg.emptyBody + cfg.shortBody ? 2 + rng.int(4) : 10 + rng.int(21);
  const body = Array.from({ length: bodyLength }, word);

  if (rng.next() < cfg.mentionVisual) {
    // One to three attribute words in a fixed reading order ("striped red star").
    const attrs = [PATTERN_WORDS[latent.style.pattern], COLOUR_WORDS[latent.style.colour], SHAPE_WORDS[latent.style.shape]];
    const keep = attrs.filter(() => rng.next() < 0.6);
    const mention = keep.length ? keep : [attrs[1 + rng.int(2)]];
    const target = body.length > 0 ? body : titleWords;
    target.splice(rng.int(target.length + 1), 0, ...mention);
  }

  const nTags = rng.next() < 0.2 ? 0 : 1 + rng.int(3);
  const tags = new Set<string>();
  for (let i = 0; i < nTags; i++) tags.add(rng.next() < 0.85 ? rng.pick(own) : rng.pick(FILLER));

  const title = titleWords.join(' ');
  let content = '';
  for (let i = 0; i < body.length; i += 8) content += (i ? ' ' : '') + body.slice(i, i + 8).join(' ') + '.';
  return { title: title[0].toUpperCase() + title.slice(1), content, topics: [...tags] };
}

/** Simulates users: each engages with notes of its interest (plus noise) over a few weeks. */
function simulateUsers(latents: SynthLatent[], ids: string[], cfg: ResolvedSynthConfig, rng: Rng): EngagementEvent[] {
  const group = (key: (l: SynthLatent) => string) => {
    const m = new Map<string, number[]>();
    latents.forEach((l, i) => {
      const k = key(l);
      const list = m.get(k);
      if (list) list.push(i);
      else m.set(k, [i]);
    });
    return m;
  };
  const byTopic = group((l) => l.topic);
  const byStyle = group((l) => styleKey(l.style));
  const byCell = group((l) => `${l.topic}|${styleKey(l.style)}`);
  const mix = cfg.userMix;
  const total = mix.text + mix.visual + mix.both;
  const day = 86400;
  const t0 = Date.UTC(2024, 0, 1) / 1000;
  const events: EngagementEvent[] = [];
  const width = String(cfg.users - 1).length;
  for (let u = 0; u < cfg.users; u++) {
    const userId = `u${String(u).padStart(width, '0')}`;
    // Interest picked through a random note, so interests follow how many notes each group has
    // and every note is engaged with about equally often.
    const seed = latents[rng.int(latents.length)];
    const r = rng.next() * total;
    let candidates =
      r < mix.text ? byTopic.get(seed.topic)!
      : r < mix.text + mix.visual ? byStyle.get(styleKey(seed.style))!
      : byCell.get(`${seed.topic}|${styleKey(seed.style)}`)!;
    if (candidates.length < 2) candidates = byTopic.get(seed.topic)!; // a group of one note makes no pairs
    const [lo, hi] = cfg.engagements;
    const n = Math.min(lo + rng.int(hi - lo + 1), candidates.length);
    const picks = rng.shuffle([...candidates]).slice(0, n);
    const start = t0 + rng.next() * 60 * day;
    for (let k = 0; k < n; k++) {
      const idx = rng.next() >= cfg.noiseEngagement ? picks[k] : rng.int(latents.length);
      events.push({ userId, noteId: ids[idx], time: Math.round(start + rng.next() * cfg.activityDays * day) });
    }
  }
  return events;
}

/**
 * Generates the whole benchmark in memory except the images: notes, latents, behaviour log,
 * pairs (pairs.ts), split by notes (splits.ts), every pair labelled.
 */
export function generateSynth(config: SynthConfig = {}): SynthData {
  const cfg = resolveSynthConfig(config);
  const root = new Rng(cfg.seed);
  const latentList = drawLatents(cfg, root.fork('latents'));
  const ids = latentList.map((_, i) => noteId(i, cfg.notes));
  const topicNames = Object.keys(TOPICS).slice(0, cfg.topics);
  const textRng = root.fork('text');
  const notes: Note[] = latentList.map((latent, i) => {
    const text = writeText(latent, cfg, textRng, topicNames);
    return { id: ids[i], ...text, imageId: ids[i], category: ['synth', latent.topic] };
  });
  const latents = new Map(ids.map((id, i) => [id, latentList[i]]));
  const events = simulateUsers(latentList, ids, cfg, root.fork('users'));
  const built = buildPairs(events, cfg.pairs);
  const split = splitByNotes(ids, built.pairs.map((p): Pair => ({ a: p.a, b: p.b })), cfg.split);
  for (const s of ['train', 'val', 'test'] as const) {
    for (const p of split.pairs[s]) p.label = labelSynthPair(latents.get(p.a)!, latents.get(p.b)!);
  }
  return { config: cfg, notes, latents, events, pairStats: built.stats, split };
}

/** PNG cover of a synthetic note (deterministic from the seed and the note id). */
export function synthImage(data: SynthData, noteIdValue: string): Promise<Buffer> {
  const latent = data.latents.get(noteIdValue);
  if (!latent) throw new Error(`synth: no note "${noteIdValue}"`);
  const rng = new Rng(data.config.seed).fork('images').fork(noteIdValue);
  return renderSvgPng(drawStyleSvg(latent.style, rng, data.config.imageSize), rng, data.config.pixelNoise);
}

export interface SynthBuildOptions {
  /** Short/long text threshold of the subsets (characters). Defaults to the median. */
  lengthThreshold?: number;
}

/**
 * Generates `synth` and writes it to `dir` in the reference layout (write.ts), with
 * dataset.json recording the resolved config; returns the summary the CLI prints (its
 * baselines left empty: scoring them is the recall protocol's job, see cli/data.ts).
 */
export async function buildSynth(dir: string, config: SynthConfig = {}, opts: SynthBuildOptions = {}): Promise<BuiltDataset & { data: SynthData }> {
  const t0 = performance.now();
  const data = generateSynth(config);
  const { split } = data;
  const labelCounts = (pairs: Pair[]) => Object.fromEntries(SYNTH_LABELS.map((l) => [l, pairs.filter((p) => p.label === l).length]));
  const written = await writeReferenceDataset(dir, {
    notes: data.notes,
    noteSplit: split.notes,
    pairs: split.pairs,
    image: async (n) => ({ data: await synthImage(data, n.id), ext: '.png' }),
    meta: {
      name: 'synth',
      builder: 'notellm2 data synth',
      config: data.config,
      notes: { train: split.notes.train.length, val: split.notes.val.length, test: split.notes.test.length },
      pairs: { train: split.pairs.train.length, val: split.pairs.val.length, test: split.pairs.test.length },
      labels: { train: labelCounts(split.pairs.train), val: labelCounts(split.pairs.val), test: labelCounts(split.pairs.test) },
      pairBuilder: data.pairStats,
      droppedBySplit: split.dropped,
    },
  });
  return generatedDataset(data, split, written, {
    name: 'synth',
    t0,
    lengthThreshold: opts.lengthThreshold,
    dropped: { ...split.dropped },
    extra: {
      'behaviour log': `${data.pairStats.events} events by ${data.pairStats.users} users; ${data.pairStats.candidatePairs} co-occurring note pairs, ` +
        `${data.pairStats.droppedHigh} above the q_high score ${data.pairStats.thresholds[1]}, ${data.pairStats.droppedLow} below q_low; ${data.pairStats.pairs} pairs kept`,
      'latents': `${data.config.topics} topics × ${data.config.shapes.length * data.config.colours.length * data.config.patterns.length} styles; mentionVisual ${data.config.mentionVisual}; image ${data.config.imageSize}px`,
    },
  });
}

/**
 * Makes sure `dir` (default datasets/synth) holds `synth` built with this config: rebuilds
 * unless its dataset.json records the same resolved config. Returns the folder.
 */
export async function ensureSynth(config: SynthConfig = {}, dir = builtinDatasetDir('synth')): Promise<{ dir: string; built: boolean }> {
  const meta = readDatasetMeta(dir);
  if (meta && meta.name === 'synth' && JSON.stringify(meta.config) === JSON.stringify(resolveSynthConfig(config))) return { dir, built: false };
  const { summary } = await buildSynth(dir, config);
  return { dir: summary.dir, built: true };
}
