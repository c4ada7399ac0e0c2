/**
 * `notellm2 report <runDir>`: writes runDir/report.html (self-contained) and, with --png,
 * one PNG per figure rendered in headless Chromium.
 */
import type { Command } from 'commander';
import { lockRunFolder, RUN_FILES } from '../experiments/run-folder';
import { writeReport } from '../viz/report';

export function registerReport(program: Command): void {
  program
    .command('report')
    .description(
      `write <runDir>/report.html from ${RUN_FILES.results} (and, when present, ${RUN_FILES.curves}, ` +
        `${RUN_FILES.saliency}, ${RUN_FILES.embeddings}, ${RUN_FILES.neighbours})`,
    )
    .argument('<runDir>', 'run folder, e.g. runs/default')
    .option('--png', 'also render each figure to <runDir>/figures/<id>.png in headless Chromium')
    .option('--png-dir <dir>', 'folder for the PNGs (default <runDir>/figures)')
    .option('--png-width <px>', 'PNG width in pixels', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 100) throw new Error(`--png-width: expected an integer ≥ 100, got "${v}"`);
      return n;
    }, 1000)
    .option('--out <file>', 'report file (default <runDir>/report.html)')
    .option('--bar-metric <metric>', 'metric of the ablation bars (default R@100, else the largest K)')
    .action(async (runDir: string, o: { png?: boolean; pngDir?: string; pngWidth: number; out?: string; barMetric?: string }) => {
      const lock = lockRunFolder(runDir, 'notellm2 report');
      let res: Awaited<ReturnType<typeof writeReport>>;
      try {
        res = await writeReport(runDir, { png: o.png, pngDir: o.pngDir, pngWidth: o.pngWidth, out: o.out, barMetric: o.barMetric });
      } finally {
        lock.release();
      }
      console.log(`report: ${res.html} (${res.figures.length} figures)`);
      for (const p of res.pngs) console.log(`png: ${p}`);
    });
}
