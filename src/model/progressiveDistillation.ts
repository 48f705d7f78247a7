/**
 * Progressive distillation (Salimans & Ho, "Progressive Distillation for Fast Sampling of Diffusion Models", ICLR
 * 2022; guided, as in Meng et al. 2023's stage 2): a student learns to take in one DDIM step what its teacher takes
 * in K (K = 2 halves the step count), on the respaced grid the student will be sampled on.
 *
 * The student's grid S is `spacedTimesteps(T, N)` (what the sampler uses for N steps); the teacher steps through S
 * with K - 1 extra timesteps inside each interval, so a student trained for N steps is a teacher's K N-step sampler
 * compressed. Both are classifier-free guided at the same phi (the student takes phi as an input, so it needs one
 * U-Net pass a step); ICM guidance is not distilled: it is applied to the student's prediction at sampling time as
 * to any model's, and the student's v (Eq. 9, which ICM guidance's Sigma reads) learns the teacher's.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CddIcm, type TurnBatch } from './cddIcm.js';
import { SpacedDiffusion, spacedTimesteps, stopGradient, type GaussianDiffusion, type ScheduleStep } from './diffusion/index.js';
import { createGuidanceStudent, guidedTeacherPrediction, type GuidanceDistillationLosses, type GuidanceDistillationOptions } from './guidanceDistillation.js';

/** A progressive-distillation student for `teacher`: the same weights, with a guidance embedding (phi as input). */
export function createProgressiveStudent(teacher: CddIcm): CddIcm {
  if (!teacher.guidanceDistilled) return createGuidanceStudent(teacher);
  const student = new CddIcm(structuredClone(teacher.config), { tokenizer: teacher.tokenizer, codec: teacher.codec });
  const src = teacher.namedParameters();
  for (const [name, v] of student.namedParameters()) v.assign(src.get(name)!);
  return student;
}

/** The student's and the teacher's respaced schedules; the student's index k is the teacher's index K k. */
export interface DistillationGrids {
  student: SpacedDiffusion;
  teacher: SpacedDiffusion;
  /** Teacher DDIM steps per student step (K). */
  substeps: number;
}

/** The grids for an N-step student of a K-substep teacher on `base` (T timesteps). */
export function distillationGrids(base: GaussianDiffusion, studentSteps: number, substeps: number): DistillationGrids {
  if (!Number.isInteger(substeps) || substeps < 2) throw new Error(`teacher substeps must be an integer >= 2, got ${substeps}`);
  const T = base.numTimesteps;
  const s = spacedTimesteps(T, studentSteps);
  if (s.length !== studentSteps) throw new Error(`${studentSteps} steps do not fit in ${T} timesteps`);
  const g = new Set<number>(s);
  for (let k = 0; k + 1 < s.length; k++) {
    for (let j = 1; j < substeps; j++) g.add(Math.round(s[k]! + (j * (s[k + 1]! - s[k]!)) / substeps));
  }
  const teacherSteps = [...g].sort((a, b) => a - b);
  if (teacherSteps.length !== substeps * (s.length - 1) + 1) {
    throw new Error(`${studentSteps} student steps x ${substeps} substeps do not fit in ${T} timesteps`);
  }
  return { student: new SpacedDiffusion(base, s), teacher: new SpacedDiffusion(base, teacherSteps), substeps };
}

/** Guidance distillation's options (phi range, rng) plus the two grids. */
export interface ProgressiveDistillationOptions extends GuidanceDistillationOptions {
  grids: DistillationGrids;
}

/** eps + v, as guidance distillation's; eps~ is the epsilon whose one DDIM step lands where the teacher's K did. */
export type ProgressiveDistillationLosses = GuidanceDistillationLosses;

/**
 * The student's loss on a batch of turns, each at a random position k of the student's grid: z_t = q(x_t | x0) at
 * t = S[k]; the guided teacher takes K clipped DDIM steps from it (one from S[0], which ends at x0); the target
 * x~ is the x0 whose single DDIM step from S[k] gives the teacher's end point, z_end = a z_t + b x~ (Salimans &
 * Ho's Eq. 8 in DPM-Solver form; a convex mix of the teacher's clipped x0 estimates, so inside the clip range). The
 * loss is the teacher's own L_simple on the epsilon that x~ implies, i.e. SNR_t ||x^ - x~||^2 (not Salimans & Ho's
 * truncated-SNR x loss: this is an epsilon model whose x0 is clipped at sampling, and an x loss would divide the
 * epsilon error by alpha_t ~ 1e-3 at the first step). Gradients reach only the student.
 */
export function progressiveDistillationLoss(student: CddIcm, teacher: CddIcm, batch: TurnBatch, o: ProgressiveDistillationOptions): ProgressiveDistillationLosses {
  if (!student.guidanceDistilled) throw new Error('the student needs a guidance embedding (createProgressiveStudent)');
  if (!(o.maxGuidance >= o.minGuidance)) throw new Error(`guidance range [${o.minGuidance}, ${o.maxGuidance}] is empty`);
  const { student: sd, teacher: td, substeps: K } = o.grids;
  const n = batch.texts.length;
  const N = sd.numTimesteps;
  const ks = Array.from({ length: n }, () => Math.min(N - 1, Math.floor(o.rng() * N)));
  const phiValues = Float32Array.from({ length: n }, () => o.minGuidance + o.rng() * (o.maxGuidance - o.minGuidance));
  const noiseSeed = Math.floor(o.rng() * 2 ** 31);
  return tf.tidy(() => {
    const cond = teacher.encodeCondition(batch.reference, batch.texts);
    const c = stopGradient(cond.c) as tf.Tensor2D;
    const context = stopGradient(cond.context) as tf.Tensor3D;
    const x0 = teacher.encodeImage(batch.target);
    const ref = teacher.encodeImage(batch.reference);
    const original = (d: SpacedDiffusion, idx: number[]) => tf.tensor1d(idx.map((i) => d.timestepMap[i]!), 'int32');
    const tStudent = original(sd, ks);
    const noise = tf.randomNormal(x0.shape, 0, 1, 'float32', noiseSeed) as tf.Tensor4D;
    const zt = teacher.diffusion.qSample(x0, tStudent, noise);
    // The teacher's K steps from teacher index K k (the same timestep); an item at k = 0 ends after its first step
    // (into x0) and is carried unchanged through the rest.
    let z = zt;
    let vT: tf.Tensor4D | null = null;
    for (let j = 0; j < K; j++) {
      const idx = ks.map((k) => Math.max(0, K * k - j));
      const live = ks.map((k) => k > 0 || j === 0);
      const p = guidedTeacherPrediction(teacher, z, ref, original(td, idx), c, context, phiValues);
      vT ??= p.v;
      const at: ScheduleStep[] = idx.map((index) => ({ diffusion: td, index }));
      const next = td.ddimStep(z, p.eps, at).sample;
      if (live.every(Boolean)) z = next;
      else {
        const m = tf.tensor4d(Float32Array.from(live, Number), [n, 1, 1, 1]);
        z = tf.add(tf.mul(m, next), tf.mul(tf.sub(1, m), z)) as tf.Tensor4D;
      }
    }
    // x~ from z_end = a z_t + b x~, the student's own first-order step from index k; then the epsilon it implies.
    const at: ScheduleStep[] = ks.map((index) => ({ diffusion: sd, index }));
    const coef = ks.map((k) => sd.solverCoefficients(k, 1));
    const col = (f: (q: { a: number; b: number }) => number) => tf.tensor4d(Float32Array.from(coef, f), [n, 1, 1, 1]);
    const xTarget = tf.div(tf.sub(z, tf.mul(col((q) => q.a), zt)), col((q) => q.b)) as tf.Tensor4D;
    const target = stopGradient(xTarget) as tf.Tensor4D;
    const s = student.diffusion.splitOutput(student.denoise(zt, ref, tStudent, c, context, tf.tensor1d(phiValues)));
    // The epsilon error is the x0 error times sqrt(SNR_t) (Eq. 3). Where the teacher's end point sits on the
    // sampler's clip bound, an estimate beyond that bound is clipped to the same value: no error there (without
    // this, latents a little out of range at t = 0 give epsilon targets in the hundreds).
    let xHat = sd.predictX0FromEps(zt, at, s.eps);
    const R = sd.x0Range;
    if (Number.isFinite(R)) {
      // Clip the estimate where the target is on the bound: beyond it, no error and no gradient; inside, both.
      const onBound = tf.cast(tf.greaterEqual(tf.abs(target), R * (1 - 1e-4)), 'float32');
      xHat = tf.add(xHat, tf.mul(onBound, tf.sub(tf.clipByValue(xHat, -R, R), xHat))) as tf.Tensor4D;
    }
    const dx = tf.sub(xHat, target);
    const eps = tf.mean(tf.square(tf.div(dx, sd.extract('sqrtRecipm1AlphasCumprod', at)))) as tf.Scalar;
    const v = tf.mean(tf.square(tf.sub(s.v, vT!))) as tf.Scalar;
    return { total: tf.add(eps, v) as tf.Scalar, eps, v };
  });
}
