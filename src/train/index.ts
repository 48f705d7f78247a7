/** Public surface of the training part: the three-stage CDD-ICM pipeline, the autoencoder training, AdamW. */
export { AdamW, type AdamWOptions, type ParamGroup } from './adamw.js';
export { WeightAverage, type AverageSnapshot } from './average.js';
export { ValidationSchedule, type ValidationAction, type ValidationState } from './schedule.js';
export {
  buildTurnDataset,
  loadEpisodeSource,
  TurnSampler,
  BatchStream,
  hostBatch,
  batchTensors,
  disposeBatch,
  ownReferenceSlots,
  validationBatches,
  ImageSampler,
  mixSeed,
  type TurnDataset,
  type HostBatch,
  type OwnReferencePick,
  type OwnTarget,
  type DatasetName,
  type EpisodeSource,
} from './data.js';
export { runStage, initialLoopState, type StageTask, type LoopState, type Budget, type LoopOptions } from './loop.js';
export { train, trainModel } from './trainer.js';
export { stageOptimizer, modelStageTask } from './modelStages.js';
export { trainAutoencoder, autoencoderTask } from './autoencoderStage.js';
export { DEFAULT_OPTIONS, type TrainOptions, type TrainResult, type TrainControl, type StageArg } from './options.js';
export {
  rolloutSelfReferences,
  readSelfReferences,
  writeSelfReferences,
  checkSelfReferences,
  rolloutOrder,
  type SelfReferences,
  type RolloutSettings,
  type RolloutOptions,
} from './selfReferences.js';
export { rewordBatch, lexiconSynonyms, learnTrainingTokenizer, toBpeModel } from './language.js';
