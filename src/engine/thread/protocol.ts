/**
 * Messages between the server's main thread and the engine thread (src/engine/thread/). The engine's hooks are
 * the sessions service's, which lives on the main thread with the database: the engine thread calls them by
 * message (`call`) and the main thread answers (`reply`). Everything else is one-way.
 */
import type { BackendPreference } from '../../backend/index.js';
import type { BatchInfo, EngineStatus, TurnInputs, TurnTimings } from '../types.js';
import type { SharedEngineSettings } from '../modelRouter.js';

/** What the engine thread starts with (its `workerData`). */
export interface EngineThreadData {
  models: Record<string, string>;
  settings: SharedEngineSettings;
  backend: BackendPreference;
}

/** A hook call from the engine thread; `callId` pairs it with its reply. */
export type HookCall =
  | { kind: 'call'; callId: number; hook: 'start'; turnId: string }
  | { kind: 'call'; callId: number; hook: 'finished'; turnId: string; png: Uint8Array; timings: TurnTimings }
  | { kind: 'call'; callId: number; hook: 'failed'; turnId: string; message: string }
  | { kind: 'call'; callId: number; hook: 'cancelled'; turnId: string };

export type FromEngineThread =
  | { kind: 'ready'; status: EngineStatus }
  | { kind: 'fatal'; message: string }
  | HookCall
  | {
      kind: 'progress';
      turnId: string;
      sessionId: string;
      step: number;
      totalSteps: number;
      etaMs: number;
      previewPng: Uint8Array | null;
    }
  | { kind: 'status'; status: EngineStatus }
  | { kind: 'batch'; info: BatchInfo }
  | { kind: 'drained' };

export type ToEngineThread =
  | { kind: 'enqueue'; sessionId: string; turnId: string; model: string | undefined }
  | { kind: 'cancel'; turnId: string }
  | { kind: 'drain' }
  | { kind: 'reply'; callId: number; ok: true; inputs?: TurnInputs | null }
  | { kind: 'reply'; callId: number; ok: false; message: string };
