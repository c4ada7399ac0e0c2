/**
 * `notellm2 data validate <dir>`: checks a dataset folder in the reference layout and prints
 * a summary (notes, pairs per split, images found, bad rows by kind) and every problem as
 * `file:line: kind: message`. Exits 1 when anything is wrong, 0 when the dataset is clean.
 */
import { Command, Option } from 'commander';
import { formatReport, validateDataset } from '../data/validate';
import { IMAGE_CHECKS, type ImageCheck } from '../data/problems';

export interface DataValidateOptions {
  /** How deeply images are checked. Defaults to 'decode'. */
  images?: ImageCheck;
  /** Print the report as JSON instead of text. */
  json?: boolean;
}

/** Runs the check and prints the report; returns the exit code (0 clean, 1 problems). */
export async function runDataValidate(
  dir: string,
  opts: DataValidateOptions = {},
  print: (line: string) => void = (l) => console.log(l),
): Promise<number> {
  const { report } = await validateDataset(dir, { images: opts.images ?? 'decode' });
  print(opts.json ? JSON.stringify(report, null, 2) : formatReport(report));
  return report.ok ? 0 : 1;
}

/** Adds `validate <dir>` under the `data` command. */
export function registerDataValidate(data: Command): Command {
  return data
    .command('validate')
    .description('check a dataset folder in the reference layout; list every problem as file:line: kind: message')
    .argument('<dir>', 'dataset folder (notes_train.csv, notes_test.csv, note_pairs_{train,val,test}.csv, images/, images_test/)')
    .addOption(new Option('--images <check>', 'how deeply to check images').choices([...IMAGE_CHECKS]).default('decode'))
    .option('--json', 'print the report as JSON')
    .action(async (dir: string, opts: DataValidateOptions) => {
      process.exitCode = await runDataValidate(dir, opts);
    });
}
