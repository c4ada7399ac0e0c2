/** Evaluation: the reference recall protocol and embedding catalogues. */
export * from './recall';
export * from './catalogue';
export * from './saliency';
