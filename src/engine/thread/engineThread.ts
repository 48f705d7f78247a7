/**
 * The engine thread's entry (a `worker_threads` worker started by ThreadedEngine): all tensor work of the server
 * runs here (model loading, sampling, batching, decoding and PNG-encoding previews and results), so the main
 * thread's event loop only serves HTTP, WebSocket, GraphQL and the database. The engine is the same ModelRouter /
 * Engine that runs in-process; its hooks are calls to the main thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { initBackend } from '../../backend/index.js';
import { partLogger } from '../../log/index.js';
import { ModelRouter } from '../modelRouter.js';
import type { EngineHooks, TurnInputs } from '../types.js';
import type { EngineThreadData, FromEngineThread, HookCall, ToEngineThread } from './protocol.js';

const log = partLogger('engine');
const port = parentPort;
if (!port) throw new Error('engineThread.ts runs as a worker thread (started by ThreadedEngine)');
const data = workerData as EngineThreadData;

const post = (m: FromEngineThread): void => port.postMessage(m);

type HookCallBody = HookCall extends infer C ? (C extends HookCall ? Omit<C, 'kind' | 'callId'> : never) : never;

let nextCallId = 1;
const waiting = new Map<number, { resolve(v: TurnInputs | null | undefined): void; reject(e: Error): void }>();

function call(body: HookCallBody): Promise<TurnInputs | null | undefined> {
  const callId = nextCallId++;
  return new Promise((resolve, reject) => {
    waiting.set(callId, { resolve, reject });
    post({ kind: 'call', callId, ...body } as HookCall);
  });
}

// Status snapshots coalesce: at most one per turn of the event loop, after whatever changed.
let statusQueued = false;
function statusChanged(): void {
  if (statusQueued) return;
  statusQueued = true;
  setImmediate(() => {
    statusQueued = false;
    post({ kind: 'status', status: router.status() });
  });
}

const hooks: EngineHooks = {
  async start(turnId) {
    const inputs = await call({ hook: 'start', turnId });
    statusChanged();
    return inputs ?? null;
  },
  progress(p) {
    post({
      kind: 'progress',
      turnId: p.turnId,
      sessionId: p.sessionId,
      step: p.step,
      totalSteps: p.totalSteps,
      etaMs: p.etaMs,
      previewPng: p.previewPng ? new Uint8Array(p.previewPng) : null,
    });
  },
  async finished(turnId, png, timings) {
    await call({ hook: 'finished', turnId, png: new Uint8Array(png), timings });
    statusChanged();
  },
  async failed(turnId, error) {
    await call({ hook: 'failed', turnId, message: error.message || String(error) });
    statusChanged();
  },
  async cancelled(turnId) {
    await call({ hook: 'cancelled', turnId });
    statusChanged();
  },
};

const backend = await initBackend(data.backend).catch((err: unknown) => {
  post({ kind: 'fatal', message: `tensor backend failed: ${err instanceof Error ? err.message : String(err)}` });
  throw err;
});
log.info({ backend, models: data.models }, 'engine thread ready');

const router = new ModelRouter({
  models: data.models,
  hooks,
  settings: data.settings,
  onBatch: (info) => {
    post({ kind: 'batch', info });
    statusChanged();
  },
  onChange: statusChanged,
});

port.on('message', (m: ToEngineThread) => {
  switch (m.kind) {
    case 'enqueue':
      router.enqueue(m.sessionId, m.turnId, m.model);
      statusChanged();
      return;
    case 'cancel':
      router.cancel(m.turnId);
      statusChanged();
      return;
    case 'reply': {
      const w = waiting.get(m.callId);
      waiting.delete(m.callId);
      if (!w) return;
      if (m.ok) w.resolve(m.inputs);
      else w.reject(new Error(m.message));
      return;
    }
    case 'drain':
      void router.drain().then(() => {
        post({ kind: 'drained' });
        port.close();
      });
      return;
  }
});

post({ kind: 'ready', status: router.status() });
