/**
 * Public surface of the eval part: the object detector / localiser, the metrics (precision / recall / F1 / RSIM,
 * paper Eq. 16-17, as GeNeVA computes them), the detector's own evaluation and the multi-turn model evaluation.
 * The CLIs (cli.ts, detectorCli.ts, trainDetectorCli.ts) are programs, not part of this surface.
 */
export * from './metrics.js';
export {
  ObjectDetector,
  loadDetector,
  saveDetector,
  type Detection,
  type DetectorConfig,
  type DetectorDataset,
  type DetectorLosses,
} from './detector.js';
export { DATASET_INFO, defaultDetectorConfig, classWeightsFrom, locate, sceneSource, trainingSource, type DatasetInfo } from './datasets.js';
export { trainDetector, makeTargets, type TrainOptions, type TrainResult, type TrainSample, type SampleSource, type StepProgress } from './train.js';
export { evaluateDetector, type DetectorScores, type DetectorEvalOptions } from './detectorEval.js';
export { evaluateModel, turnSeed, type ModelEvalOptions, type ModelEvalReport, type EpisodeResult, type TurnResult, type RelationReport } from './evaluate.js';
export { checkCodec, type CheckedCodec, type CodecCheckReport, type CodecCheckOptions, type CodecRoundScores } from './codecCheck.js';
export { iclevrRsimCeiling, type RsimCeiling } from './ceiling.js';
export { contactSheet, type ContactSheetOptions } from './contactSheet.js';
export { DETECTOR_TRUST_F1 } from './trust.js';
