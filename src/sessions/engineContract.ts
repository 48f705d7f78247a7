/**
 * The engine contract as the sessions service sees it (docs/ARCHITECTURE.md "Engine"): the sessions service
 * implements EngineHooks and drives a GenerationEngine.
 */
export type {
  EngineHooks,
  GenerationEngine,
  TurnInputs,
  TurnProgress as TurnProgressReport,
  EngineStatus as EngineStatusInfo,
  ModelStatus as ModelStatusInfo,
  SolverName,
} from '../engine/index.js';
export { SOLVERS } from '../engine/index.js';
