/**
 * notellm2 — public API. The CLI and the notebooks call only what is exported here.
 */
export * from './backend';
export * from './viz';
