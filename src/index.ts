/**
 * notellm2 — public API. The CLI and the notebooks call only what is exported here.
 * Layers, top to bottom: backend → data → model → train → eval → experiments → viz.
 */
export * from './backend';
export * from './data';
export * from './model';
export * from './train';
export * from './eval';
export * from './experiments';
export * from './viz';
export { runBench, formatBench, median, MATMUL_SIZES } from './bench';
export type { BenchConfig, BenchResult, BenchOptions, BenchFigures, BenchGemm } from './bench';
