/**
 * Guidance distillation (Meng et al., "On Distillation of Guided Diffusion Models", CVPR 2023, stage 1): a student
 * U-Net that takes the classifier-free guidance scale phi as an input learns to give, in one pass, the guided
 * epsilon of Eq. 15 that its teacher needs two passes for (conditional and null condition). Encoders, fusion and
 * the noisy image encoder are the teacher's, unchanged, so ICM guidance and best-of-n work with the student as
 * with the teacher.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CddIcm, type TurnBatch } from './cddIcm.js';
import { stopGradient } from './diffusion/index.js';

/** A student for `teacher`: the same weights, plus a zero-initialised guidance embedding in the U-Net. */
export function createGuidanceStudent(teacher: CddIcm): CddIcm {
  if (teacher.guidanceDistilled) throw new Error('the teacher is already guidance-distilled');
  const cfg = structuredClone(teacher.config);
  cfg.unet = { ...cfg.unet, guidanceEmbedding: true };
  const student = new CddIcm(cfg, { tokenizer: teacher.tokenizer, codec: teacher.codec });
  const src = teacher.namedParameters();
  for (const [name, v] of student.namedParameters()) {
    const t = src.get(name);
    if (t) v.assign(t);
  }
  return student;
}

export interface GuidanceDistillationOptions {
  /** phi is drawn uniformly from [minGuidance, maxGuidance] per item (Meng et al.: w ~ U[wmin, wmax]). */
  minGuidance: number;
  maxGuidance: number;
  /** Uniform [0, 1) source for timesteps, phi and noise seeds (deterministic when seeded). */
  rng: () => number;
}

export interface GuidanceDistillationLosses {
  /** eps + v. */
  total: tf.Scalar;
  /** || eps_student(x_t, c, phi) - (phi eps(x_t, c) + (1 - phi) eps(x_t, 0)) ||^2 (Eq. 15 as the target). */
  eps: tf.Scalar;
  /** || v_student - v_teacher(x_t, c) ||^2: Eq. 9's interpolation, which ICM guidance's Sigma reads. */
  v: tf.Scalar;
}

/**
 * The student's loss on a batch of turns at random timesteps and guidance scales. Gradients reach only the
 * student's U-Net (the condition is encoded by the teacher, whose encoders the student shares by value).
 */
export function guidanceDistillationLoss(student: CddIcm, teacher: CddIcm, batch: TurnBatch, o: GuidanceDistillationOptions): GuidanceDistillationLosses {
  if (!student.guidanceDistilled) throw new Error('the student needs a guidance embedding (createGuidanceStudent)');
  if (!(o.maxGuidance >= o.minGuidance)) throw new Error(`guidance range [${o.minGuidance}, ${o.maxGuidance}] is empty`);
  const n = batch.texts.length;
  const T = teacher.diffusion.numTimesteps;
  return tf.tidy(() => {
    const cond = teacher.encodeCondition(batch.reference, batch.texts);
    const c = stopGradient(cond.c) as tf.Tensor2D;
    const context = stopGradient(cond.context) as tf.Tensor3D;
    const x0 = teacher.encodeImage(batch.target);
    const ref = teacher.encodeImage(batch.reference);
    const t = tf.tensor1d(Int32Array.from({ length: n }, () => Math.min(T - 1, Math.floor(o.rng() * T))), 'int32');
    const phiValues = Float32Array.from({ length: n }, () => o.minGuidance + o.rng() * (o.maxGuidance - o.minGuidance));
    const noise = tf.randomNormal(x0.shape, 0, 1, 'float32', Math.floor(o.rng() * 2 ** 31)) as tf.Tensor4D;
    const xt = teacher.diffusion.qSample(x0, t, noise);
    const { eps: target, v: vT } = guidedTeacherPrediction(teacher, xt, ref, t, c, context, phiValues);
    const s = student.diffusion.splitOutput(student.denoise(xt, ref, t, c, context, tf.tensor1d(phiValues)));
    const eps = tf.mean(tf.square(tf.sub(s.eps, target))) as tf.Scalar;
    const v = tf.mean(tf.square(tf.sub(s.v, vT))) as tf.Scalar;
    return { total: tf.add(eps, v) as tf.Scalar, eps, v };
  });
}

/**
 * A teacher's guided prediction at phi per item, without gradients: Eq. 15's epsilon, phi eps(x_t, c) + (1 - phi)
 * eps(x_t, 0) (both passes in one batch), or one pass for a guidance-distilled teacher; v is the conditional pass's
 * (Eq. 9's interpolation, which ICM guidance's Sigma reads).
 */
export function guidedTeacherPrediction(
  teacher: CddIcm,
  xt: tf.Tensor4D,
  ref: tf.Tensor4D,
  t: tf.Tensor1D,
  c: tf.Tensor2D,
  context: tf.Tensor3D,
  phiValues: Float32Array,
): { eps: tf.Tensor4D; v: tf.Tensor4D } {
  const n = xt.shape[0];
  return tf.tidy(() => {
    if (teacher.guidanceDistilled) {
      const out = stopGradient(teacher.denoise(xt, ref, t, c, context, tf.tensor1d(phiValues))) as tf.Tensor4D;
      return teacher.diffusion.splitOutput(out);
    }
    // Conditional, then the null condition (c = 0, empty context), in one batch.
    const out = teacher.denoise(
      tf.concat([xt, xt]) as tf.Tensor4D,
      tf.concat([ref, ref]) as tf.Tensor4D,
      tf.concat([t, t]) as tf.Tensor1D,
      tf.concat([c, tf.zerosLike(c)]) as tf.Tensor2D,
      tf.concat([context, tf.zerosLike(context)]) as tf.Tensor3D,
    );
    const { eps, v } = teacher.diffusion.splitOutput(stopGradient(out) as tf.Tensor4D);
    const phi = tf.tensor4d(phiValues, [n, 1, 1, 1]);
    const guided = tf.add(tf.mul(phi, eps.slice(0, n)), tf.mul(tf.sub(1, phi), eps.slice(n, n))) as tf.Tensor4D;
    return { eps: guided, v: v.slice(0, n) };
  });
}
