/**
 * Distillation stages of a trained model (the teacher, --init, frozen) into a student that samples faster; only the
 * student's U-Net group trains, its encoders stay the teacher's (so ICM guidance and best-of-n work unchanged):
 *  - 'guidance' (Meng et al. 2023, stage 1): the student takes phi as an input and gives the guided epsilon in one
 *    U-Net pass instead of two;
 *  - 'progressive' (Salimans & Ho 2022; Meng et al.'s stage 2): the student takes in one step on its N-step grid
 *    what the guided teacher takes in K (--student-steps N, --teacher-substeps K); its config records N as its
 *    default step count.
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { mulberry32 } from '../data/index.js';
import { partLogger } from '../log/index.js';
import {
  AutoencoderCodec,
  CddIcm,
  createGuidanceStudent,
  createProgressiveStudent,
  distillationGrids,
  guidanceDistillationLoss,
  loadCheckpoint,
  progressiveDistillationLoss,
  saveCheckpoint,
  type TurnBatch,
} from '../model/index.js';
import { AdamW } from './adamw.js';
import { writeFolderAtomically } from './checkpointIo.js';
import { BatchStream, TurnSampler, batchTensors, disposeBatch, mixSeed, validationBatches, type HostBatch, type TurnDataset } from './data.js';
import { initialLoopState, type Budget, type LoopState, type StageTask } from './loop.js';
import type { TrainControl, TrainOptions, TrainResult } from './options.js';
import { keptBest, oneStageResult, resumeFromLast, runResumableStage, trainedSnapshots } from './resumableStage.js';
import { installStop, loadData, wholeBudget, writeArgs } from './runSupport.js';

const log = partLogger('train');

type DistillationKind = 'guidance-distillation' | 'progressive-distillation';

/** trainer.json of a distillation run (the teacher is the run's --init). */
interface DistillationTrainerState {
  kind: DistillationKind;
  version: 1;
  loop: LoopState;
  budget: Budget;
}

type DistillationLoss = (batch: TurnBatch, rng: () => number) => { total: tf.Scalar; eps: tf.Scalar; v: tf.Scalar };

/** What differs between the two distillations: the student made from the teacher, and the loss. */
interface Distillation {
  kind: DistillationKind;
  name: string;
  student(teacher: CddIcm): CddIcm;
  loss(student: CddIcm, teacher: CddIcm): DistillationLoss;
  dispose(): void;
}

function distillationOf(o: TrainOptions, teacher: CddIcm): Distillation {
  const range = { minGuidance: o.guidanceRange[0], maxGuidance: o.guidanceRange[1] };
  if (o.stage === 'guidance') {
    if (teacher.guidanceDistilled) throw new Error(`${o.init} is already a guidance-distilled student`);
    return {
      kind: 'guidance-distillation',
      name: 'guidance distillation',
      student: createGuidanceStudent,
      loss: (s, t) => (b, rng) => guidanceDistillationLoss(s, t, b, { ...range, rng }),
      dispose() {},
    };
  }
  const grids = distillationGrids(teacher.diffusion, o.studentSteps, o.teacherSubsteps);
  return {
    kind: 'progressive-distillation',
    name: `progressive distillation (${o.studentSteps} steps from ${o.teacherSubsteps} x ${o.studentSteps})`,
    student: (t) => {
      const s = createProgressiveStudent(t);
      // The student is sampled on the grid it learnt: its default step count is N.
      s.config.sampling = { ...s.config.sampling, steps: o.studentSteps };
      return s;
    },
    loss: (s, t) => (b, rng) => progressiveDistillationLoss(s, t, b, { ...range, grids, rng }),
    dispose() {
      grids.student.dispose();
      grids.teacher.dispose();
    },
  };
}

/** A distillation as a loop task: the student's U-Net learns the teacher's target. */
export function distillationTask(
  name: string,
  loss: DistillationLoss,
  optimizer: AdamW,
  train: TurnDataset,
  valBatches: HostBatch[],
  o: Pick<TrainOptions, 'batch' | 'seed'>,
): StageTask {
  const stream = new BatchStream(train, new TurnSampler(train.texts.length, mixSeed(o.seed, 19)), o.batch, 0);
  return {
    name,
    optimizer,
    batchSize: o.batch,
    loss(cursor, step) {
      stream.cursor = cursor;
      const b = batchTensors(stream.next());
      // Timesteps, phi and noise from a per-step seed: a resumed run draws the same ones.
      const l = loss(b, mulberry32(mixSeed(o.seed, 71, step)));
      disposeBatch(b);
      return { total: l.total, parts: { eps: l.eps, v: l.v } };
    },
    validate() {
      let sum = 0;
      valBatches.forEach((hb, i) => {
        sum += tf.tidy(() => loss(batchTensors(hb), mulberry32(mixSeed(o.seed, 997, i))).total.dataSync()[0]!);
      });
      return sum / valBatches.length;
    },
    ...trainedSnapshots(optimizer),
  };
}

/**
 * Distil --init (frozen) into a student (stage 'guidance' or 'progressive'), training the student's U-Net only;
 * resumable from out/last; the student is saved to out/model.
 */
export async function trainDistillation(o: TrainOptions, control: TrainControl = {}): Promise<TrainResult> {
  if (!o.init) throw new Error(`--stage ${String(o.stage)} distils a trained model: pass it as --init <model folder>`);
  const [lo, hi] = o.guidanceRange;
  if (!(lo >= 0 && hi >= lo)) throw new Error(`--guidance-range ${lo},${hi}: want 0 <= min <= max`);
  await writeArgs(o);
  const { train, val } = await loadData(o);
  const valBatches = validationBatches(val, o.batch, o.valBatches, mixSeed(o.seed, 5));
  const teacher = await loadCheckpoint(o.init);
  const d = distillationOf(o, teacher);
  const resumed = await resumeFromLast<CddIcm, DistillationTrainerState>(o, d.kind, `a ${d.name}`, (dir) => loadCheckpoint(dir, { codec: teacher.codec }));
  if (resumed) log.info({ from: resumed.dir, step: resumed.state.loop.step }, 'resuming');
  else if (o.resume) log.warn({ out: o.out }, 'nothing to resume: starting fresh');
  const student = resumed?.model ?? d.student(teacher);
  const st: DistillationTrainerState = resumed?.state ?? { kind: d.kind, version: 1, loop: initialLoopState(o.lr, 0), budget: {} };
  // A budget on the command line replaces a resumed run's.
  if (o.steps !== undefined || o.minutes !== undefined) st.budget = wholeBudget(o);
  if (teacher.codec instanceof AutoencoderCodec) teacher.codec.enableCache(Math.max(train.numImages, val.numImages) * 2);
  // The U-Net group (context projection, U-Net, its guidance embedding) at lr; everything else stays the teacher's.
  const nameOf = new Map<tf.Variable, string>();
  for (const [n, v] of student.namedParameters()) nameOf.set(v, n);
  const unetVars = new Map(student.parameterGroups().unet.vars.map((v) => [nameOf.get(v)!, v]));
  const opt = new AdamW([{ name: 'unet', params: unetVars, lrScale: 1 }], { lr: o.lr, weightDecay: o.weightDecay, clipNorm: o.clipNorm });
  if (resumed) opt.loadStateArrays(resumed.moments, st.loop.adamStep);
  const task = distillationTask(d.name, d.loss(student, teacher), opt, train, valBatches, o);
  const best = await keptBest<DistillationTrainerState>(o, st.loop, async (dir) => {
    const bm = await loadCheckpoint(dir, { codec: teacher.codec });
    const byName = bm.namedParameters();
    const weights = new Map<string, tf.Tensor>();
    for (const [n, v] of unetVars) weights.set(v.name, tf.clone(byName.get(n)!));
    bm.dispose();
    return { weights };
  });
  const stop = installStop(control);
  try {
    log.info({ teacher: o.init, kind: d.kind, guidanceRange: o.guidanceRange, budget: st.budget, params: unetVars.size }, `${d.name} start`);
    const r = await runResumableStage(task, st, best, st.budget, o, { saveModel: (tmp) => saveCheckpoint(student, tmp), shouldStop: stop.shouldStop });
    if (!r.interrupted) await writeFolderAtomically(join(o.out, 'model'), (tmp) => saveCheckpoint(student, tmp));
    return oneStageResult(o.out, r);
  } finally {
    stop.remove();
    d.dispose();
    opt.dispose();
    student.dispose();
    teacher.dispose();
  }
}
