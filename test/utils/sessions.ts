/**
 * The sessions service without a model, for tests that play the engine themselves: a GenerationEngine that only
 * records what the service asks of it, and a service over a given database with one tiny served model.
 */
import { makeConfig, type ConfigInput } from '../../src/config/index.js';
import { blankImage, encodePng } from '../../src/data/index.js';
import {
  SessionsService, type Db, type EngineStatusInfo, type GenerationEngine, type PubSub,
} from '../../src/sessions/index.js';

/** What the service asked of the engine. */
export class RecordingEngine implements GenerationEngine {
  readonly enqueued: Array<{ sessionId: string; turnId: string; model: string | undefined }> = [];
  readonly cancelled: string[] = [];
  enqueue(sessionId: string, turnId: string, model?: string): void {
    this.enqueued.push({ sessionId, turnId, model });
  }
  cancel(turnId: string): boolean {
    this.cancelled.push(turnId);
    return true;
  }
  status(): EngineStatusInfo {
    return { backend: 'none', device: 'none', threads: 0, model: 'none', queueLength: this.enqueued.length, busy: false };
  }
  async drain(): Promise<void> {}
}

export const TINY_TURN_DEFAULTS = { steps: 4, guidanceScale: 3, icmGuidanceScale: 2, candidates: 1 };

/** A service on `db` serving i-CLEVR sessions with a 16x16 model keyed `model-a`, its engine a RecordingEngine. */
export function modelFreeService(o: { db: Db; pubsub: PubSub; config?: ConfigInput }): { service: SessionsService; engine: RecordingEngine } {
  const service = new SessionsService({
    db: o.db, pubsub: o.pubsub, config: makeConfig(o.config ?? {}), encodePng,
    models: { iclevr: { key: 'model-a', name: 'tiny (a)', canvasSize: 16, turnDefaults: TINY_TURN_DEFAULTS } },
    background: (_d, size) => blankImage(size, size, [60, 60, 60]),
  });
  const engine = new RecordingEngine();
  service.attachEngine(engine);
  return { service, engine };
}
