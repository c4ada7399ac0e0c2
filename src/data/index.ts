export * from './schema';
export * from './csv';
export * from './loaders';
export * from './validate';
export * from './images';
export * from './tokenizer';
