/** Experiments: presets and sweeps, the ablation runner, result tables and files. */
export * from './presets';
export * from './datasets';
export * from './defaults';
export * from './variant';
export * from './runner';
export * from './results';
export * from './restore';
export * from './evaluate';
export * from './saliency';
export * from './run-folder';
export * from './baselines';
export * from './statistics';
export * from './claims';
export * from './regimes';
export * from './analysis';
export * from './sources';
export * from './export';
