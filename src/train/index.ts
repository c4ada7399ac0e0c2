/** Training: objectives, optimiser and schedule, progress reporting, the training loop. */
export * from './loss';
export * from './optim';
export * from './progress';
export * from './config';
export * from './trainer';
export * from './representation';
export * from './pretrain';
