import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GaussianDiffusion,
  cosineBetas,
  createGuidanceStudent,
  createProgressiveStudent,
  distillationGrids,
  progressiveDistillationLoss,
  spacedTimesteps,
  type CddIcm,
  type DistillationGrids,
} from '../../src/model/index.js';
import { makeTurns, perturb, tinyModel, toBatch } from './fixtures.js';

let teacher: CddIcm;
let grids: DistillationGrids;
beforeAll(() => {
  teacher = tinyModel();
  perturb(teacher, 0.05);
  grids = distillationGrids(teacher.diffusion, 4, 2);
});
afterAll(() => {
  grids.student.dispose();
  grids.teacher.dispose();
  teacher.dispose();
});

const turns = makeTurns();
const PHI = 3;

/** Classifier-free guided epsilon of a plain teacher (Eq. 15), written out here rather than taken from the loss. */
function guidedEps(m: CddIcm, xt: tf.Tensor4D, ref: tf.Tensor4D, t: number, c: tf.Tensor2D, ctx: tf.Tensor3D): tf.Tensor4D {
  return tf.tidy(() => {
    const tt = tf.fill([xt.shape[0]], t, 'int32') as tf.Tensor1D;
    if (m.guidanceDistilled) return m.diffusion.splitOutput(m.denoise(xt, ref, tt, c, ctx, tf.fill([xt.shape[0]], PHI) as tf.Tensor1D)).eps;
    const e = (cc: tf.Tensor2D, cx: tf.Tensor3D) => m.diffusion.splitOutput(m.denoise(xt, ref, tt, cc, cx)).eps;
    return tf.add(tf.mul(PHI, e(c, ctx)), tf.mul(1 - PHI, e(tf.zerosLike(c), tf.zerosLike(ctx)))) as tf.Tensor4D;
  });
}

/**
 * From x_t at the student's grid index k: the teacher's two DDIM steps (through the interval's midpoint) and the
 * student's one, each computed from the diffusion tables directly. Returns the RMS distance of the end points.
 */
function endPointGap(student: CddIcm, k: number): number {
  return tf.tidy(() => {
    const b = toBatch(turns.slice(0, 4));
    const cond = teacher.encodeCondition(b.reference, b.texts);
    const ref = teacher.encodeImage(b.reference);
    const { student: sd, teacher: td } = grids;
    const t = sd.timestepMap[k]!;
    const x0 = teacher.encodeImage(b.target);
    const xt = teacher.diffusion.qSample(x0, tf.fill([4], t, 'int32') as tf.Tensor1D, tf.randomNormal(x0.shape, 0, 1, 'float32', 11) as tf.Tensor4D);
    const at = (d: typeof sd, index: number) => Array.from({ length: 4 }, () => ({ diffusion: d, index }));
    let z = xt;
    for (const idx of [2 * k, 2 * k - 1]) z = td.ddimStep(z, guidedEps(teacher, z, ref, td.timestepMap[idx]!, cond.c, cond.context), at(td, idx)).sample;
    const one = sd.ddimStep(xt, guidedEps(student, xt, ref, t, cond.c, cond.context), at(sd, k)).sample;
    return Math.sqrt(tf.mean(tf.square(tf.sub(one, z))).dataSync()[0]!);
  });
}

describe('progressive distillation (Salimans & Ho 2022)', () => {
  it('the student grid is the sampler\'s N-step respacing; the teacher adds K - 1 timesteps inside each interval', () => {
    const base = new GaussianDiffusion(cosineBetas(1000));
    const g = distillationGrids(base, 5, 2);
    expect(g.student.timestepMap).toEqual(spacedTimesteps(1000, 5));
    expect(g.teacher.timestepMap).toHaveLength(9);
    g.student.timestepMap.forEach((t, k) => expect(g.teacher.timestepMap[2 * k]).toBe(t));
    const g3 = distillationGrids(base, 4, 3);
    expect(g3.teacher.timestepMap).toEqual([0, 111, 222, 333, 444, 555, 666, 777, 888, 999]);
    // alphabar of the student's index k is the base's at its timestep: the same diffusion, respaced.
    g.student.timestepMap.forEach((t, k) => expect(g.student.alphasCumprod[k]).toBeCloseTo(base.alphasCumprod[t]!, 12));
    expect(() => distillationGrids(base, 5, 1)).toThrow(/substeps/);
    expect(() => distillationGrids(base, 600, 2)).toThrow(/do not fit/);
  });

  it('at the last grid position the target is the teacher\'s own step: a copy of a one-pass teacher has zero loss there', () => {
    const gd = createGuidanceStudent(teacher);
    perturb(gd, 0.02, 4);
    const copy = createProgressiveStudent(gd);
    const b = toBatch(turns.slice(0, 6));
    // rng() = 0: every item at k = 0 (t = 0 into x0), phi = the range's minimum.
    const l = progressiveDistillationLoss(copy, gd, b, { grids, minGuidance: PHI, maxGuidance: PHI, rng: () => 0 });
    expect(l.eps.dataSync()[0]).toBeLessThan(1e-8);
    expect(l.v.dataSync()[0]).toBeLessThan(1e-10);
    // Anywhere else the teacher's two steps are not one: the gap distillation closes.
    const l2 = progressiveDistillationLoss(copy, gd, b, { grids, minGuidance: PHI, maxGuidance: PHI, rng: () => 0.9 });
    expect(l2.eps.dataSync()[0]).toBeGreaterThan(1e-4);
    tf.dispose([l.total, l.eps, l.v, l2.total, l2.eps, l2.v, b.reference, b.target]);
    copy.dispose();
    gd.dispose();
  });

  it('the loss falls, only the student\'s U-Net moves, and its one step lands nearer the teacher\'s two', () => {
    const student = createProgressiveStudent(teacher);
    expect(student.guidanceDistilled).toBe(true);
    const vars = student.parameterGroups().unet.vars;
    const frozen = tf.clone(student.parameterGroups().textEncoder.vars[0]!);
    const teacherBefore = tf.clone(teacher.parameterGroups().unet.vars[0]!);
    const gapBefore = [1, 2, 3].map((k) => endPointGap(student, k));
    const opt = tf.train.adam(5e-4);
    const batch = toBatch(turns.slice(0, 8));
    const losses: number[] = [];
    for (let step = 0; step < 25; step++) {
      // Positions, phi and noise the same every step (phi fixed at PHI): the loss itself must fall.
      let i = 0;
      const seq = [0.3, 0.6, 0.9, 0.45];
      const rng = () => seq[i++ % seq.length]!;
      const l = opt.minimize(() => progressiveDistillationLoss(student, teacher, batch, { grids, minGuidance: PHI, maxGuidance: PHI, rng }).total, true, vars);
      losses.push(l!.dataSync()[0]!);
      l!.dispose();
    }
    expect(losses.at(-1)!).toBeLessThan(0.5 * losses[0]!);
    const gapAfter = [1, 2, 3].map((k) => endPointGap(student, k));
    expect(gapAfter.reduce((a, b) => a + b)).toBeLessThan(gapBefore.reduce((a, b) => a + b));
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(student.parameterGroups().textEncoder.vars[0]!, frozen))).dataSync()[0])).toBe(0);
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(teacher.parameterGroups().unet.vars[0]!, teacherBefore))).dataSync()[0])).toBe(0);
    opt.dispose();
    tf.dispose([frozen, teacherBefore, batch.reference, batch.target]);
    student.dispose();
  });
});
