/**
 * `notellm2 data synth|openmoji|pairs|validate`: build the built-in datasets in the reference
 * layout (printing a summary and the two single-modality baselines' recall per subset), build
 * related pairs from a behaviour log, and check a dataset folder.
 */
import { Command } from 'commander';
import { initBackend } from '../backend';
import { formatDatasetSummary, type BaselineRecall, type BuiltDataset } from '../data/summary';
import { buildOpenmoji } from '../data/openmoji';
import { buildPairs, readEventsCsv, writePairsCsv } from '../data/pairs';
import { buildSynth } from '../data/synth';
import { builtinDatasetDir } from '../data/write';
import { baselineRecall } from '../experiments/baselines';
import { registerDataValidate } from './data-validate';
import { intArg, numArg, shareArg } from './args';

/** Scores the TF-IDF and colour-histogram baselines on a built dataset's test pairs (reference protocol). */
export async function scoreBaselines(built: BuiltDataset): Promise<Record<string, BaselineRecall>> {
  const t0 = performance.now();
  const testNotes = built.testNoteIds.map((id) => built.notes.get(id)!);
  const recall = await baselineRecall({ notes: testNotes, pairs: built.testPairs, subsets: built.subsets.predicates, image: built.imageFile });
  const out: Record<string, BaselineRecall> = {};
  for (const [name, r] of Object.entries(recall)) {
    out[name] = {
      queries: r.nQueries,
      pool: r.poolSize,
      recall: r.recall,
      subsets: Object.fromEntries(Object.entries(r.subsets).map(([k, m]) => [k, { queries: m.nQueries, recall: m.recall }])),
    };
  }
  built.summary.baselines = out;
  built.summary.seconds.baselines = (performance.now() - t0) / 1000;
  return out;
}

interface BuildFlags {
  out?: string;
  seed?: number;
  imageSize?: number;
  testFraction?: number;
  valFraction?: number;
  shortThreshold?: number;
  baselines: boolean;
  json?: boolean;
}

async function finish(built: BuiltDataset, flags: BuildFlags, started: number): Promise<void> {
  if (flags.baselines) {
    await initBackend();
    await scoreBaselines(built);
  }
  const wall = (performance.now() - started) / 1000;
  if (flags.json) console.log(JSON.stringify({ ...built.summary, wallSeconds: wall }, null, 2));
  else console.log(`${formatDatasetSummary(built.summary)}\nwall:   ${wall.toFixed(1)} s`);
}

/**
 * The options every dataset build shares (after the builder's own), and its action: build,
 * score the baselines, print the summary.
 */
function buildAction<O extends BuildFlags>(
  cmd: Command,
  build: (o: O, split: { testFraction?: number; valFraction?: number }, opts: { lengthThreshold?: number }) => Promise<BuiltDataset>,
): Command {
  return cmd
    .option('--test-fraction <p>', 'share of notes held out for test (default 0.2; synth 0.6 at full size)', shareArg('--test-fraction'))
    .option('--val-fraction <p>', 'share of notes held out for validation (default 0.1; synth 0.06 at full size)', shareArg('--val-fraction'))
    .option('--short-threshold <chars>', 'short/long text threshold of the subsets (default: the median)', intArg('--short-threshold', 0))
    .option('--no-baselines', 'skip the TF-IDF and colour-histogram baselines')
    .option('--json', 'print the summary as JSON')
    .action(async (o: O) => {
      const started = performance.now();
      const built = await build(o, { testFraction: o.testFraction, valFraction: o.valFraction }, { lengthThreshold: o.shortThreshold });
      await finish(built, o, started);
    });
}

export function registerData(program: Command): Command {
  const data = program.command('data').description('build, convert and check datasets (reference layout: notes/pairs CSVs, images/, images_test/)');

  buildAction(
    data
      .command('synth')
      .description('build the synthetic benchmark (topic + visual latents, behaviour log → pairs; pairs labelled visual/text/both) and print its summary and baselines')
      .option('--out <dir>', 'output folder', builtinDatasetDir('synth'))
      .option('--notes <n>', 'number of notes (default 12000; 800 with NOTELLM2_SMOKE=1)', intArg('--notes', 10))
      .option('--seed <n>', 'seed of everything', intArg('--seed', 0), 1)
      .option('--mention-visual <p>', 'probability that a note text names its visual attributes (default 0.1)', shareArg('--mention-visual'))
      .option('--empty-body <p>', 'share of notes with an empty body (default 0.2)', shareArg('--empty-body'))
      .option('--short-body <p>', 'share of notes with a 2–5 word body (default 0.25)', shareArg('--short-body'))
      .option('--topics <n>', 'number of topics, 2..20 (default 20)', intArg('--topics', 2))
      .option('--image-size <px>', 'side of the PNG covers (default 64)', intArg('--image-size', 16))
      .option('--window-days <d>', 'co-occurrence window of the pair builder (default 7)', numArg('--window-days'))
      .option('--top-k <k>', 'partners kept per note (default 10)', intArg('--top-k', 1)),
    (o: BuildFlags & { notes?: number; mentionVisual?: number; emptyBody?: number; shortBody?: number; topics?: number; windowDays?: number; topK?: number }, split, opts) =>
      buildSynth(
        o.out ?? builtinDatasetDir('synth'),
        {
          notes: o.notes,
          seed: o.seed,
          mentionVisual: o.mentionVisual,
          emptyBody: o.emptyBody,
          shortBody: o.shortBody,
          topics: o.topics,
          imageSize: o.imageSize,
          pairs: { windowDays: o.windowDays, topK: o.topK },
          split,
        },
        opts,
      ),
  );

  buildAction(
    data
      .command('openmoji')
      .description('build the OpenMoji dataset (CC BY-SA 4.0) from the openmoji package: skin-tone and same-subgroup pairs; print its summary and baselines')
      .option('--out <dir>', 'output folder', builtinDatasetDir('openmoji'))
      .option('--seed <n>', 'seed of the split and the partner choice', intArg('--seed', 0), 1)
      .option('--image-size <px>', 'side of the PNG covers (default 64)', intArg('--image-size', 8))
      .option('--limit <n>', 'keep whole subgroups up to about n notes (default all; 800 with NOTELLM2_SMOKE=1)', intArg('--limit', 10))
      .option('--skintone-partners <k>', 'skin-tone siblings paired with each note (default 1)', intArg('--skintone-partners', 0))
      .option('--subgroup-partners <k>', 'same-subgroup notes paired with each note (default 3)', intArg('--subgroup-partners', 0)),
    (o: BuildFlags & { limit?: number; skintonePartners?: number; subgroupPartners?: number }, split, opts) =>
      buildOpenmoji(
        o.out ?? builtinDatasetDir('openmoji'),
        { seed: o.seed, imageSize: o.imageSize, limit: o.limit, skintonePartners: o.skintonePartners, subgroupPartners: o.subgroupPartners, split },
        opts,
      ),
  );

  data
    .command('pairs')
    .description('build related pairs from a behaviour log: s(A→B) = Σ_u 1/N_u over users engaging with both within the window; quantile filter; top-k per note')
    .requiredOption('--events <csv>', 'events CSV with header user_id,note_id,timestamp (ISO-8601 or epoch seconds)')
    .requiredOption('--out <csv>', 'pairs CSV to write (note_id,related_note_id; no header)')
    .option('--window-days <d>', 'two engagements co-occur when at most this many days apart', numArg('--window-days'), 7)
    .option('--top-k <k>', 'partners kept per note', intArg('--top-k', 1), 10)
    .option('--q-low <q>', 'drop pairs scoring below this quantile', shareArg('--q-low'), 0)
    .option('--q-high <q>', 'drop pairs scoring above this quantile', shareArg('--q-high'), 0.99)
    .option('--keep-mirrored', 'also write (B,A) when (A,B) is written')
    .action((o: { events: string; out: string; windowDays: number; topK: number; qLow: number; qHigh: number; keepMirrored?: boolean }) => {
      const t0 = performance.now();
      const events = readEventsCsv(o.events);
      const { pairs, stats } = buildPairs(events, { windowDays: o.windowDays, topK: o.topK, qLow: o.qLow, qHigh: o.qHigh, keepMirrored: o.keepMirrored });
      writePairsCsv(o.out, pairs);
      console.log(
        `events ${stats.events} (users ${stats.users}, notes ${stats.notes}); co-occurring pairs ${stats.candidatePairs}; ` +
          `score thresholds [${stats.thresholds[0]}, ${stats.thresholds[1]}] dropped ${stats.droppedLow} low, ${stats.droppedHigh} high; ` +
          `wrote ${stats.pairs} pairs to ${o.out} in ${((performance.now() - t0) / 1000).toFixed(2)} s`,
      );
    });

  registerDataValidate(data);
  return data;
}
