/** Public surface of the data part: images, episodes, renderers, datasets. */
export * from './image.js';
export { checkPng, PngCheckError, type PngHeader } from './pngCheck.js';
export * from './episode.js';
export { Rng, hashSeed, hashString, mulberry32 } from './prng.js';
export * from './iclevr.js';
export * from './iclevrRender.js';
export * from './iclevrPhrasing.js';
export { heldOutPhrasing, paraphraseEpisodes } from './iclevrHeldOutPhrasing.js';
export * from './codraw.js';
export * from './codrawRender.js';
export * from './scene.js';
