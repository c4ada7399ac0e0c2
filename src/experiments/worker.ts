/**
 * Worker process of the ablation runner: receives one VariantSpec, runs it, sends the result
 * back and exits. Keeping each variant in its own process gives it its own tfjs engine and
 * native GEMM threads, so two variants train side by side on two cores.
 */
import { exitWithParent } from '../backend/parent-watch';
import { runVariant, type VariantSpec } from './variant';

// A parent killed outright (SIGKILL, out of memory) sends no message: end with it, within a
// second, even in the middle of a training step.
exitWithParent();

process.once('message', (spec: VariantSpec) => {
  runVariant(spec)
    .then((result) => process.send!({ result }, () => process.exit(0)))
    .catch((err: Error) => process.send!({ error: err.stack ?? err.message }, () => process.exit(1)));
});

// The runner went away (interrupted, killed): stop rather than train on for nobody. Finished
// work is safe in the variant's checkpoints, and a rerun resumes from them.
process.on('disconnect', () => process.exit(1));
