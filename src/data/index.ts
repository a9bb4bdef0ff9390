/**
 * Datasets of memscope: the shipped Fashion-MNIST subset ({@link loadFashionMnist}), folders
 * of images with captions ({@link loadImageFolder}), memorized-prompt lists
 * ({@link readPromptSet}), the IDX format, and index helpers.
 */
export * from './fashion-mnist.ts';
export * from './folder.ts';
export * from './idx.ts';
export * from './indices.ts';
export * from './paths.ts';
export * from './pixels.ts';
export * from './prompt-set.ts';
