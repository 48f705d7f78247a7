/** Gaussian diffusion, respacing and the pure loss math. */
export * from './losses.js';
export * from './gaussianDiffusion.js';
export * from './respace.js';
