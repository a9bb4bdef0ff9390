/**
 * Datasets of memscope: the shipped Fashion-MNIST subset ({@link loadFashionMnist}), folders
 * of images with captions ({@link loadImageFolder}), the IDX format, and index helpers.
 */
export * from './fashion-mnist.ts';
export * from './folder.ts';
export * from './idx.ts';
export * from './indices.ts';
export * from './paths.ts';
export * from './pixels.ts';
