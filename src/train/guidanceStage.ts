/**
 * Stage 'guidance' (Meng et al. 2023, stage 1): guidance distillation of a trained model (the teacher, --init) into
 * a student that takes phi as an input and needs one U-Net pass per step.
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { mulberry32 } from '../data/index.js';
import { partLogger } from '../log/index.js';
import { AutoencoderCodec, CddIcm, createGuidanceStudent, guidanceDistillationLoss, loadCheckpoint, saveCheckpoint } from '../model/index.js';
import { AdamW } from './adamw.js';
import { writeFolderAtomically } from './checkpointIo.js';
import { BatchStream, TurnSampler, batchTensors, disposeBatch, mixSeed, validationBatches, type HostBatch, type TurnDataset } from './data.js';
import { initialLoopState, type Budget, type LoopState, type StageTask } from './loop.js';
import type { TrainControl, TrainOptions, TrainResult } from './options.js';
import { keptBest, oneStageResult, resumeFromLast, runResumableStage, trainedSnapshots } from './resumableStage.js';
import { installStop, loadData, wholeBudget, writeArgs } from './runSupport.js';

const log = partLogger('train');

/** trainer.json of a guidance-distillation run (the teacher is the run's --init). */
interface GuidanceTrainerState {
  kind: 'guidance-distillation';
  version: 1;
  loop: LoopState;
  budget: Budget;
}

/** Guidance distillation as a loop task: the student's U-Net learns the teacher's guided epsilon in one pass. */
export function guidanceDistillationTask(
  student: CddIcm,
  teacher: CddIcm,
  optimizer: AdamW,
  train: TurnDataset,
  valBatches: HostBatch[],
  o: Pick<TrainOptions, 'batch' | 'seed' | 'guidanceRange'>,
): StageTask {
  const stream = new BatchStream(train, new TurnSampler(train.texts.length, mixSeed(o.seed, 19)), o.batch, 0);
  const range = { minGuidance: o.guidanceRange[0], maxGuidance: o.guidanceRange[1] };
  return {
    name: 'guidance distillation',
    optimizer,
    batchSize: o.batch,
    loss(cursor, step) {
      stream.cursor = cursor;
      const b = batchTensors(stream.next());
      // Timesteps, phi and noise from a per-step seed: a resumed run draws the same ones.
      const l = guidanceDistillationLoss(student, teacher, b, { ...range, rng: mulberry32(mixSeed(o.seed, 71, step)) });
      disposeBatch(b);
      return { total: l.total, parts: { eps: l.eps, v: l.v } };
    },
    validate() {
      let sum = 0;
      valBatches.forEach((hb, i) => {
        sum += tf.tidy(() => guidanceDistillationLoss(student, teacher, batchTensors(hb), { ...range, rng: mulberry32(mixSeed(o.seed, 997, i)) }).total.dataSync()[0]!);
      });
      return sum / valBatches.length;
    },
    ...trainedSnapshots(optimizer),
  };
}

/**
 * Distil --init (frozen) into a student, training the student's U-Net only; resumable from out/last; the student
 * is saved to out/model.
 */
export async function trainGuidanceDistillation(o: TrainOptions, control: TrainControl = {}): Promise<TrainResult> {
  if (!o.init) throw new Error('--stage guidance distils a trained model: pass it as --init <model folder>');
  const [lo, hi] = o.guidanceRange;
  if (!(lo >= 0 && hi >= lo)) throw new Error(`--guidance-range ${lo},${hi}: want 0 <= min <= max`);
  await writeArgs(o);
  const { train, val } = await loadData(o);
  const valBatches = validationBatches(val, o.batch, o.valBatches, mixSeed(o.seed, 5));
  const teacher = await loadCheckpoint(o.init);
  if (teacher.guidanceDistilled) throw new Error(`${o.init} is already a guidance-distilled student`);
  const resumed = await resumeFromLast<CddIcm, GuidanceTrainerState>(o, 'guidance-distillation', 'a guidance-distillation', (dir) => loadCheckpoint(dir, { codec: teacher.codec }));
  if (resumed) log.info({ from: resumed.dir, step: resumed.state.loop.step }, 'resuming');
  else if (o.resume) log.warn({ out: o.out }, 'nothing to resume: starting fresh');
  const student = resumed?.model ?? createGuidanceStudent(teacher);
  const st: GuidanceTrainerState = resumed?.state ?? { kind: 'guidance-distillation', version: 1, loop: initialLoopState(o.lr, 0), budget: {} };
  // A budget on the command line replaces a resumed run's.
  if (o.steps !== undefined || o.minutes !== undefined) st.budget = wholeBudget(o);
  if (teacher.codec instanceof AutoencoderCodec) teacher.codec.enableCache(Math.max(train.numImages, val.numImages) * 2);
  // The U-Net group (context projection, U-Net, its guidance embedding) at lr; everything else stays the teacher's.
  const nameOf = new Map<tf.Variable, string>();
  for (const [n, v] of student.namedParameters()) nameOf.set(v, n);
  const unetVars = new Map(student.parameterGroups().unet.vars.map((v) => [nameOf.get(v)!, v]));
  const opt = new AdamW([{ name: 'unet', params: unetVars, lrScale: 1 }], { lr: o.lr, weightDecay: o.weightDecay, clipNorm: o.clipNorm });
  if (resumed) opt.loadStateArrays(resumed.moments, st.loop.adamStep);
  const task = guidanceDistillationTask(student, teacher, opt, train, valBatches, o);
  const best = await keptBest<GuidanceTrainerState>(o, st.loop, async (dir) => {
    const bm = await loadCheckpoint(dir, { codec: teacher.codec });
    const byName = bm.namedParameters();
    const weights = new Map<string, tf.Tensor>();
    for (const [n, v] of unetVars) weights.set(v.name, tf.clone(byName.get(n)!));
    bm.dispose();
    return { weights };
  });
  const stop = installStop(control);
  try {
    log.info({ teacher: o.init, guidanceRange: o.guidanceRange, budget: st.budget, params: unetVars.size }, 'guidance distillation start');
    const r = await runResumableStage(task, st, best, st.budget, o, { saveModel: (tmp) => saveCheckpoint(student, tmp), shouldStop: stop.shouldStop });
    if (!r.interrupted) await writeFolderAtomically(join(o.out, 'model'), (tmp) => saveCheckpoint(student, tmp));
    return oneStageResult(o.out, r);
  } finally {
    stop.remove();
    opt.dispose();
    student.dispose();
    teacher.dispose();
  }
}
