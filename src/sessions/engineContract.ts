/**
 * The engine contract as the sessions service sees it (docs/ARCHITECTURE.md "Engine"). The sessions service
 * implements EngineHooks and drives a GenerationEngine; these are structurally the engine's own types.
 */
import type { RgbImage } from '../data/index.js';

export interface TurnInputs {
  turnId: string;
  sessionId: string;
  text: string;
  reference: RgbImage;
  steps: number;
  guidanceScale: number;
  icmGuidanceScale: number;
  seed: number;
}

export interface TurnProgressReport {
  turnId: string;
  sessionId: string;
  step: number;
  totalSteps: number;
  etaMs: number;
  previewPng: Buffer | null;
}

export interface EngineHooks {
  start(turnId: string): Promise<TurnInputs | null>;
  progress(p: TurnProgressReport): void;
  finished(turnId: string, png: Buffer, timings: { queuedMs: number; runMs: number }): Promise<void>;
  failed(turnId: string, error: Error): Promise<void>;
  cancelled(turnId: string): Promise<void>;
}

export interface EngineStatusInfo {
  backend: string;
  device: string;
  threads: number;
  model: string;
  queueLength: number;
  busy: boolean;
}

export interface GenerationEngine {
  enqueue(sessionId: string, turnId: string): void;
  cancel(turnId: string): boolean;
  status(): EngineStatusInfo;
  drain(): Promise<void>;
}
