/**
 * What every stage shares around the loop: resuming from out/last, reading the kept model back from out/best,
 * and running the loop with checkpoints written to last/ and best/ (model files, optimizer.safetensors and
 * trainer.json). The caller says how its model is loaded and saved.
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { AdamW, NamedArray } from './adamw.js';
import type { WeightAverage } from './average.js';
import { readTrainerState, resolveFolder, writeFolderAtomically, writeTrainerState } from './checkpointIo.js';
import { disposeSnapshot, runStage, type BestSnapshot, type Budget, type LoopState, type StageTask } from './loop.js';
import type { TrainOptions, TrainResult } from './options.js';

/** The state a stage's trainer.json holds besides its kind: the loop's. */
interface TrainerState {
  kind: string;
  loop: LoopState;
}

/** The variables a stage may change, by variable name (for snapshots and the weight average). */
export function stageNames(opt: AdamW): Map<string, tf.Variable> {
  const out = new Map<string, tf.Variable>();
  for (const v of opt.trainableVariables()) out.set(v.name, v);
  return out;
}

/** A task's snapshot / restore: copies of the variables its optimizer trains. */
export function trainedSnapshots(opt: AdamW): Pick<StageTask, 'snapshot' | 'restore'> {
  const vars = stageNames(opt);
  return {
    snapshot: () => {
      const m = new Map<string, tf.Tensor>();
      for (const [k, v] of vars) m.set(k, tf.clone(v));
      return m;
    },
    restore: (s) => {
      for (const [k, v] of vars) {
        const t = s.get(k);
        if (t) v.assign(t);
      }
    },
  };
}

/**
 * With --resume, the run's state in out/last: its model (`load`), trainer state (checked to be of `kind`;
 * `what` names it in the error) and optimizer moments. Null: nothing to resume from.
 */
export async function resumeFromLast<M, S extends TrainerState>(
  o: Pick<TrainOptions, 'out' | 'resume'>,
  kind: S['kind'],
  what: string,
  load: (dir: string) => Promise<M>,
): Promise<{ dir: string; model: M; state: S; moments: Map<string, NamedArray> } | null> {
  const dir = resolveFolder(join(o.out, 'last'));
  if (!o.resume || !dir) return null;
  const model = await load(dir);
  const r = await readTrainerState<S>(dir);
  if (r.state.kind !== kind) throw new Error(`${dir}: not ${what} training state`);
  return { dir, model, state: r.state, moments: r.optimizer };
}

/**
 * With --resume, the kept model of a stage that has validated (`loop`) read back from out/best: `kept` gives its
 * trained weights by variable name, or null where best/ is not this stage's.
 */
export async function keptBest<S extends TrainerState>(
  o: Pick<TrainOptions, 'out' | 'resume'>,
  loop: LoopState,
  kept: (dir: string, state: S) => Promise<Pick<BestSnapshot, 'weights' | 'average'> | null>,
): Promise<BestSnapshot | null> {
  const dir = resolveFolder(join(o.out, 'best'));
  if (!o.resume || !dir || loop.validation.best === null) return null;
  const b = await readTrainerState<S>(dir);
  const k = await kept(dir, b.state);
  return k && { ...k, moments: b.optimizer, adamStep: b.state.loop.adamStep };
}

/**
 * Run (or continue) a stage from `st.loop`; last/ and best/ get the model (`saveModel`), the optimizer moments and
 * trainer.json (`st` with the loop's state). The kept snapshot is disposed: the model ends on it.
 */
export async function runResumableStage<S extends TrainerState>(
  task: StageTask,
  st: S,
  best: BestSnapshot | null,
  budget: Budget,
  o: Pick<TrainOptions, 'out' | 'valEvery' | 'valPatience' | 'checkpointMinutes' | 'progress'>,
  run: { saveModel: (dir: string) => Promise<void>; shouldStop: () => boolean; average?: WeightAverage },
): Promise<{ state: LoopState; interrupted: boolean }> {
  const save = (dir: string, s: LoopState): Promise<void> =>
    writeFolderAtomically(dir, async (tmp) => {
      await run.saveModel(tmp);
      await writeTrainerState(tmp, task.optimizer.stateArrays(), { ...st, loop: s });
    });
  const r = await runStage(task, st.loop, best, { saveLast: (s) => save(join(o.out, 'last'), s), saveBest: (s) => save(join(o.out, 'best'), s) }, {
    budget,
    valEvery: o.valEvery,
    valPatience: o.valPatience,
    checkpointMinutes: o.checkpointMinutes,
    metricsFile: join(o.out, 'metrics.jsonl'),
    progress: o.progress,
    shouldStop: run.shouldStop,
    ...(run.average ? { average: run.average } : {}),
  });
  disposeSnapshot(r.best);
  return { state: r.state, interrupted: r.interrupted };
}

/** The result of a run of one stage. */
export function oneStageResult(out: string, r: { state: LoopState; interrupted: boolean }): TrainResult {
  return { out, interrupted: r.interrupted, finished: [r.state.finished], steps: [r.state.step], bestVal: [r.state.validation.best] };
}
