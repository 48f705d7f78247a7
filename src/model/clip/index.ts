/** Loading pretrained Hugging Face CLIP checkpoints (local folders only) into the CLIP-style encoders. */
export { clipConfigFromHf, visionConfigFromHf, textConfigFromHf, type HfClipConfig } from './config.js';
export {
  loadClipWeights, loadClip, loadClipTokenizer, readClipConfig, readClipTensors,
  type LoadClipOptions, type LoadReport, type LoadClipResult, type LoadedClip,
} from './load.js';
