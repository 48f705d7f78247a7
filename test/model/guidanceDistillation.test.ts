import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imagesToTensor, mulberry32 } from '../../src/data/index.js';
import {
  Sampler,
  SpacedDiffusion,
  createGuidanceStudent,
  guidanceDistillationLoss,
  spacedTimesteps,
  type CddIcm,
} from '../../src/model/index.js';
import { makeTurns, perturb, tinyModel, toBatch } from './fixtures.js';

let teacher: CddIcm;
beforeAll(() => {
  teacher = tinyModel();
  perturb(teacher, 0.05);
});
afterAll(() => teacher.dispose());

const turns = makeTurns();
const maxDiff = (a: tf.Tensor, b: tf.Tensor): number => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);

/** Teacher's Eq. 15 epsilon and the student's one-pass epsilon on fixed x_t, t, phi. */
function guidedPair(student: CddIcm, phi: number): { teacher: tf.Tensor4D; student: tf.Tensor4D } {
  return tf.tidy(() => {
    const b = toBatch(turns.slice(0, 4));
    const cond = teacher.encodeCondition(b.reference, b.texts);
    const ref = teacher.encodeImage(b.reference);
    const t = tf.tensor1d([100, 300, 500, 800], 'int32');
    const xt = teacher.diffusion.qSample(b.target, t, tf.randomNormal(b.target.shape, 0, 1, 'float32', 5) as tf.Tensor4D);
    const epsC = teacher.diffusion.splitOutput(teacher.denoise(xt, ref, t, cond.c, cond.context)).eps;
    const epsU = teacher.diffusion.splitOutput(teacher.denoise(xt, ref, t, tf.zerosLike(cond.c), tf.zerosLike(cond.context))).eps;
    const guided = tf.add(tf.mul(phi, epsC), tf.mul(1 - phi, epsU)) as tf.Tensor4D;
    const one = student.diffusion.splitOutput(student.denoise(xt, ref, t, cond.c, cond.context, tf.fill([4], phi) as tf.Tensor1D)).eps;
    return { teacher: guided, student: one };
  });
}

describe('guidance distillation (Meng et al. 2023)', () => {
  it('a fresh student is its teacher\'s conditional model at every phi', () => {
    const student = createGuidanceStudent(teacher);
    const at1 = guidedPair(student, 1);
    expect(maxDiff(at1.teacher, at1.student)).toBeLessThan(1e-5);
    const at4 = guidedPair(student, 4);
    // Not yet the guided prediction: the gap is what distillation has to close.
    expect(maxDiff(at4.teacher, at4.student)).toBeGreaterThan(1e-3);
    expect(() => student.denoise(tf.zeros([1, 16, 16, 3]), tf.zeros([1, 16, 16, 3]), tf.tensor1d([1], 'int32'), tf.zeros([1, student.config.projectionDim]), tf.zeros([1, 2, student.config.contextDim]))).toThrow(/guidance scale/);
    expect(() => createGuidanceStudent(student)).toThrow(/already guidance-distilled/);
    student.dispose();
  });

  it('the loss falls, gradients reach only the student\'s U-Net, and its one pass approaches the guided teacher', () => {
    const student = createGuidanceStudent(teacher);
    const vars = student.parameterGroups().unet.vars;
    const frozen = student.parameterGroups().textEncoder.vars[0]!;
    const frozenBefore = tf.clone(frozen);
    const teacherBefore = tf.clone(teacher.parameterGroups().unet.vars[0]!);
    const opt = tf.train.adam(5e-4);
    const batch = toBatch(turns.slice(0, 8));
    const losses: number[] = [];
    const gapBefore = tf.tidy(() => {
      const p = guidedPair(student, 4);
      return tf.mean(tf.square(tf.sub(p.teacher, p.student))).dataSync()[0]!;
    });
    for (let step = 0; step < 20; step++) {
      // The same timesteps, phi and noise every step: the loss itself must fall.
      const rng = mulberry32(7);
      const l = opt.minimize(() => guidanceDistillationLoss(student, teacher, batch, { minGuidance: 1, maxGuidance: 6, rng }).total, true, vars);
      losses.push(l!.dataSync()[0]!);
      l!.dispose();
    }
    expect(losses.at(-1)!).toBeLessThan(0.5 * losses[0]!);
    const gapAfter = tf.tidy(() => {
      const p = guidedPair(student, 4);
      return tf.mean(tf.square(tf.sub(p.teacher, p.student))).dataSync()[0]!;
    });
    expect(gapAfter).toBeLessThan(gapBefore);
    expect(maxDiff(frozen, frozenBefore)).toBe(0);
    expect(maxDiff(teacher.parameterGroups().unet.vars[0]!, teacherBefore)).toBe(0);
    opt.dispose();
    tf.dispose([frozenBefore, teacherBefore, batch.reference, batch.target]);
    student.dispose();
  });

  it('the sampler runs a student in one U-Net pass per step, phi going in as an input', () => {
    const student = createGuidanceStudent(teacher);
    perturb(student, 0.02, 5);
    const r = { text: turns[5]!.text, reference: turns[5]!.reference, steps: 4, guidanceScale: 3, icmGuidanceScale: 0, seed: 7 };
    const sampler = new Sampler(student);
    const s = sampler.prepare(r);
    sampler.step([s]);
    const got = tf.clone((s as unknown as { x: tf.Tensor4D }).x);
    s.dispose();
    const want = tf.tidy(() => {
      const pixels = imagesToTensor([r.reference]);
      const cond = student.encodeCondition(pixels, [r.text]);
      const ref = student.encodeImage(pixels);
      const x = tf.randomNormal([1, 16, 16, 3], 0, 1, 'float32', r.seed) as tf.Tensor4D;
      const sp = new SpacedDiffusion(student.diffusion, spacedTimesteps(1000, r.steps));
      const t = tf.tensor1d([sp.timestepMap[3]!], 'int32');
      const eps = student.diffusion.splitOutput(student.denoise(x, ref, t, cond.c, cond.context, tf.tensor1d([3]))).eps;
      return student.diffusion.ddimStep(x, eps, [{ diffusion: sp, index: 3 }]).sample;
    });
    expect(maxDiff(got, want)).toBeLessThan(1e-5);
    tf.dispose([got, want]);
    student.dispose();
  });
});
