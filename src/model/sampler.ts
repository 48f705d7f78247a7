/**
 * Step-wise sampling for the engine: deterministic DDIM (eta = 0) or DPM-Solver++(2M) on a strided subset of the
 * T steps, with classifier-free guidance (Eq. 15) and ICM guidance (Eq. 14). Every item carries its own condition,
 * seed, step count, solver and position, so one `step()` call advances a batch whose items joined at different
 * times with one U-Net call. The diffusion math (x0 / eps conversions, Eq. 9, the solver updates) is the
 * diffusion object's; this file only orchestrates guidance.
 */
import * as tf from '@tensorflow/tfjs-core';
import { hashSeed, imagesToTensor, resizeImage, tensorToImages, type RgbImage } from '../data/index.js';
import { SpacedDiffusion, spacedTimesteps, type ScheduleStep, type SolverOrder } from './diffusion/index.js';
import type { CddIcm } from './cddIcm.js';
import { SOLVERS, type SolverName } from './config.js';

export interface SampleRequest {
  text: string;
  reference: RgbImage;
  /**
   * The reference in codec space, when the caller still has it from the turn that generated the reference
   * (`SampleState.latent()`): the U-Net then reads it as is instead of re-encoding the 8-bit image. A latent
   * codec's decode/encode round trip is lossy, and in the iterative setting the loss compounds over turns.
   */
  referenceLatent?: Float32Array;
  /** Number of DDIM steps (a uniform subset of the T training steps; the paper uses 250). */
  steps: number;
  /** phi of classifier-free guidance (Eq. 15); 1 switches it off. */
  guidanceScale: number;
  /** psi of ICM guidance (Eq. 14); 0 switches it off. */
  icmGuidanceScale: number;
  /**
   * The ODE solver on the respaced schedule: 'ddim' or 'dpm++2m' (DPM-Solver++(2M): second order from the second
   * step on, the same U-Net cost per step; closer to the ODE's solution at few steps, though on the i-CLEVR model
   * it scored below DDIM at 8-10 steps: its model card). Absent: the model's recommendation (config.json
   * `sampling.solver`), else 'ddim'.
   */
  solver?: SolverName;
  /** Seed of x_T ~ N(0, I): the same request and seed give the same image. */
  seed: number;
  /**
   * Best-of-n (not the paper's): sample n candidates (seeds from candidateSeed; candidate 0 is `seed`) and keep
   * the one the model's clean-image ICM score ranks first. Default 1: plain sampling.
   */
  candidates?: number;
  /**
   * Best-of-n only: pick the candidate after this share of the steps, by the ICM score of the candidates' x0
   * estimates, and denoise only that one from there (early selection: the rest of the steps cost one sample, not
   * n). 1 picks at the end, from the finished images. Absent: the model's `sampling.selectAt`, else 1.
   */
  selectAt?: number;
  /**
   * Best-of-n with early selection only: whether the candidates get ICM guidance before one is kept. False guides
   * only the kept candidate's remaining steps: ICM guidance's gradient through the noisy encoder is the largest
   * cost of a step (bench:step), paid n times before the selection and once after it. Absent: the model's
   * `sampling.icmBeforeSelection`, else true.
   */
  icmBeforeSelection?: boolean;
}

export interface SampleState {
  readonly request: SampleRequest;
  /** Samples this state denoises per step (its candidates). */
  readonly width: number;
  readonly done: boolean;
  /** Steps taken so far. */
  readonly stepIndex: number;
  readonly totalSteps: number;
  /**
   * The current x0 estimate as pixels [H, W, 3] in [-1, 1] (x_T decoded before the first step); of candidate 0
   * for best-of-n (which candidate wins is known only at the end). Caller disposes.
   */
  predX0(): tf.Tensor3D;
  /** The generated image (best-of-n: the kept candidate's); only when done. */
  result(): RgbImage;
  /** The generated sample in codec space [h * w * C] (NHWC order); only when done. */
  latent(): Float32Array;
  /** Best-of-n: the kept candidate and every candidate's score (empty for n = 1); only when done. */
  choice(): { candidate: number; scores: number[] };
  /** Free the state's tensors (idempotent). */
  dispose(): void;
}

/** The encoded condition of a request, shared by its candidates. */
interface Condition {
  reference: tf.Tensor4D;
  c: tf.Tensor2D;
  context: tf.Tensor3D;
}

/** One sample being denoised. */
class State implements SampleState {
  readonly width = 1;
  stepIndex = 0;
  disposed = false;
  x: tf.Tensor4D;
  x0: tf.Tensor4D | null = null;
  /** The guided x0 estimate of the step at `step`, computed ahead by `Sampler.glimpse`; that step reuses it. */
  ahead: { step: number; x0: tf.Tensor4D } | null = null;
  /** A best-of-n candidate not yet kept, of a request that guides only after the selection (icmBeforeSelection). */
  icmHeld = false;
  constructor(
    readonly request: SampleRequest,
    readonly model: CddIcm,
    readonly schedule: SpacedDiffusion,
    readonly cond: Condition,
    x: tf.Tensor4D,
    /** False for a best-of-n candidate: its group frees the shared condition. */
    private readonly ownsCondition = true,
  ) {
    this.x = x;
  }
  get reference(): tf.Tensor4D {
    return this.cond.reference;
  }
  get c(): tf.Tensor2D {
    return this.cond.c;
  }
  get context(): tf.Tensor3D {
    return this.cond.context;
  }
  get totalSteps(): number {
    return this.schedule.numTimesteps;
  }
  get done(): boolean {
    return this.stepIndex >= this.totalSteps;
  }
  get solver(): SolverName {
    return solverOf(this.model, this.request);
  }
  predX0(): tf.Tensor3D {
    this.alive();
    return tf.tidy(() => {
      const pixels = this.model.codec.decode(this.x0 ?? this.x);
      return tf.clipByValue(pixels, -1, 1).squeeze([0]) as tf.Tensor3D;
    });
  }
  result(): RgbImage {
    this.alive();
    if (!this.done) throw new Error(`sample not finished (${this.stepIndex}/${this.totalSteps} steps)`);
    const pixels = tf.tidy(() => this.model.codec.decode(this.x));
    const [img] = tensorToImages(pixels);
    pixels.dispose();
    return img!;
  }
  latent(): Float32Array {
    this.alive();
    if (!this.done) throw new Error(`sample not finished (${this.stepIndex}/${this.totalSteps} steps)`);
    return Float32Array.from(this.x.dataSync());
  }
  choice(): { candidate: number; scores: number[] } {
    return { candidate: 0, scores: [] };
  }
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    tf.dispose(this.ownsCondition ? [this.x, this.cond.reference, this.cond.c, this.cond.context] : [this.x]);
    this.x0?.dispose();
    this.ahead?.x0.dispose();
  }
  private alive(): void {
    if (this.disposed) throw new Error('sample state was disposed');
  }
}

/**
 * Best-of-n: n candidates of one request, stepped together with everything else in the batch; when they are done,
 * each candidate's image is scored with compositionalMatch(reference, text, image) (the model's clean-image ICM, as
 * DALL-E reranked with CLIP) and the highest is kept.
 */
class BestOfState implements SampleState {
  /** The kept candidate, its decoded image and all scores, computed once when first asked for. */
  private picked: { candidate: number; scores: number[]; image: RgbImage } | null = null;
  /** An early selection (selectAt < 1): the kept candidate and the scores of all at that step. */
  private early: { candidate: number; scores: number[] } | null = null;
  private disposed = false;
  constructor(
    readonly request: SampleRequest,
    readonly model: CddIcm,
    public members: State[],
    private readonly cond: Condition,
    /** Steps after which the candidate is picked early (totalSteps: at the end). */
    private readonly selectAfter: number,
  ) {}
  /** Whether an early selection is due now (the step loop calls `selectEarly` then). */
  get selectionDue(): boolean {
    return this.early === null && this.members.length > 1 && this.selectAfter < this.totalSteps && this.stepIndex >= this.selectAfter;
  }
  /** Keep the candidate whose x0 estimate the ICM score ranks first; the others are freed. */
  selectEarly(): void {
    const s = tf.tidy(() => {
      const x0 = tf.concat(this.members.map((m) => m.x0 ?? m.x)) as tf.Tensor4D;
      const pixels = tf.clipByValue(this.model.codec.decode(x0), -1, 1) as tf.Tensor4D;
      return this.model.conditionMatch(pixels, tf.tile(this.cond.c, [this.members.length, 1]) as tf.Tensor2D);
    });
    const scores = Array.from(s.dataSync());
    s.dispose();
    const candidate = scores.indexOf(Math.max(...scores));
    this.members.forEach((m, k) => k !== candidate && m.dispose());
    this.members = [this.members[candidate]!];
    this.members[0]!.icmHeld = false;
    this.early = { candidate, scores };
  }
  get width(): number {
    return this.members.length;
  }
  get stepIndex(): number {
    return this.members[0]!.stepIndex;
  }
  get totalSteps(): number {
    return this.members[0]!.totalSteps;
  }
  get done(): boolean {
    return this.members[0]!.done;
  }
  predX0(): tf.Tensor3D {
    return this.members[0]!.predX0();
  }
  result(): RgbImage {
    return this.pick().image;
  }
  latent(): Float32Array {
    const { candidate } = this.pick();
    return (this.early ? this.members[0]! : this.members[candidate]!).latent();
  }
  choice(): { candidate: number; scores: number[] } {
    const { candidate, scores } = this.pick();
    return { candidate, scores };
  }
  private pick(): { candidate: number; scores: number[]; image: RgbImage } {
    if (this.disposed) throw new Error('sample state was disposed');
    if (!this.picked && this.early) this.picked = { ...this.early, image: this.members[0]!.result() };
    if (!this.picked) {
      // The candidates share the request's fused condition: score against it instead of encoding it n times.
      const images = this.members.map((m) => m.result());
      const s = tf.tidy(() => this.model.conditionMatch(imagesToTensor(images), this.cond.c));
      const scores = Array.from(s.dataSync());
      s.dispose();
      const candidate = scores.indexOf(Math.max(...scores));
      this.picked = { candidate, scores, image: images[candidate]! };
    }
    return this.picked;
  }
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const m of this.members) m.dispose();
    tf.dispose([this.cond.reference, this.cond.c, this.cond.context]);
  }
}

const MAX_CANDIDATES = 64;

/** The request's solver, else the model's recommended one, else DDIM; throws on an unknown name. */
function solverOf(model: CddIcm, req: SampleRequest): SolverName {
  const s = req.solver ?? model.config.sampling?.solver ?? 'ddim';
  if (!SOLVERS.includes(s)) throw new Error(`solver must be one of ${SOLVERS.join(', ')}, got ${String(s)}`);
  return s;
}

export class Sampler {
  private readonly schedules = new Map<number, SpacedDiffusion>();
  constructor(readonly model: CddIcm) {}

  /** The respaced schedule for a step count (JS arrays only; cached). */
  private schedule(steps: number): SpacedDiffusion {
    let s = this.schedules.get(steps);
    if (!s) {
      const base = this.model.diffusion;
      s = new SpacedDiffusion(base, spacedTimesteps(base.numTimesteps, steps));
      this.schedules.set(steps, s);
    }
    return s;
  }

  /** Encode the condition once and draw x_T from the seed (of each candidate). */
  prepare(req: SampleRequest): SampleState {
    const T = this.model.diffusion.numTimesteps;
    if (!Number.isInteger(req.steps) || req.steps < 1 || req.steps > T) throw new Error(`steps must be an integer in [1, ${T}], got ${req.steps}`);
    if (!Number.isFinite(req.guidanceScale) || !Number.isFinite(req.icmGuidanceScale)) throw new Error('guidance scales must be finite');
    const n = req.candidates ?? 1;
    if (!Number.isInteger(n) || n < 1 || n > MAX_CANDIDATES) throw new Error(`candidates must be an integer in [1, ${MAX_CANDIDATES}], got ${n}`);
    solverOf(this.model, req);
    const selectAt = req.selectAt ?? this.model.config.sampling?.selectAt ?? 1;
    if (!(selectAt > 0 && selectAt <= 1)) throw new Error(`selectAt must be in (0, 1], got ${selectAt}`);
    const schedule = this.schedule(req.steps);
    const m = this.model;
    const shape: [number, number, number, number] = [1, m.latentSize, m.latentSize, m.latentChannels];
    if (req.referenceLatent && req.referenceLatent.length !== shape[1] * shape[2] * shape[3]) {
      throw new Error(`referenceLatent has ${req.referenceLatent.length} values, the model's codec space ${shape.slice(1).join('x')}`);
    }
    const cond: Condition = tf.tidy(() => {
      const pixels = imagesToTensor([resizeImage(req.reference, m.config.imageSize)]);
      const enc = m.encodeCondition(pixels, [req.text]);
      const reference = req.referenceLatent ? tf.tensor4d(req.referenceLatent, shape) : m.encodeImage(pixels);
      return { reference, c: enc.c, context: enc.context };
    });
    // tfjs draws unseeded noise for a seed of 0 (`seed || Math.random()`): seed 0 gets 2^32, which no other
    // seed (an unsigned 32-bit value) maps to, so every seed, 0 included, reproduces its image.
    const noise = (seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed >>> 0 || 2 ** 32) as tf.Tensor4D;
    if (n === 1) return new State(req, m, schedule, cond, noise(req.seed));
    const members = Array.from({ length: n }, (_, k) => new State(req, m, schedule, cond, noise(candidateSeed(req.seed, k)), false));
    const selectAfter = Math.ceil(selectAt * req.steps);
    // Holding ICM guidance back means something only when a selection comes before the last step.
    if (selectAfter < req.steps && !(req.icmBeforeSelection ?? m.config.sampling?.icmBeforeSelection ?? true)) {
      for (const s of members) s.icmHeld = true;
    }
    return new BestOfState(req, m, members, cond, selectAfter);
  }

  /** The states' unfinished samples (a best-of-n state's candidates), checked to belong to this sampler. */
  private members(states: SampleState[]): State[] {
    return states.flatMap((s) => (s instanceof BestOfState ? s.members : [s])).map((s) => {
      if (!(s instanceof State) || s.model !== this.model) throw new Error('state was not prepared by a sampler of this model');
      if (s.disposed) throw new Error('sample state was disposed');
      return s;
    }).filter((s) => !s.done);
  }

  /** Per-item position in its own respaced schedule (index n-1 is x_T's step). */
  private positions(active: State[]): ScheduleStep[] {
    return active.map((s) => ({ diffusion: s.schedule, index: s.totalSteps - 1 - s.stepIndex }));
  }

  /**
   * The guided x0 estimate of each item's next step: one U-Net call for the batch (plus one for the null
   * condition), classifier-free guidance (Eq. 15), then ICM guidance (Eq. 14) expressed on the estimate.
   */
  private estimate(active: State[]): tf.Tensor4D {
    const m = this.model;
    const dif = m.diffusion;
    const B = active.length;
    // Every coefficient below is gathered from each item's own position by the diffusion object.
    const at = this.positions(active);
    const phi = active.map((s) => s.request.guidanceScale);
    const psi = active.map((s) => (s.icmHeld ? 0 : s.request.icmGuidanceScale));
    const guided = active.map((_, i) => i).filter((i) => phi[i] !== 1);
    const icmGuided = active.map((_, i) => i).filter((i) => psi[i] !== 0);
    const col = (a: number[]): tf.Tensor4D => tf.tensor4d(Float32Array.from(a), [a.length, 1, 1, 1]);
    return tf.tidy(() => {
      const xt = tf.concat(active.map((s) => s.x)) as tf.Tensor4D;
      const ref = tf.concat(active.map((s) => s.reference)) as tf.Tensor4D;
      const c = tf.concat(active.map((s) => s.c)) as tf.Tensor2D;
      const ctx = tf.concat(active.map((s) => s.context)) as tf.Tensor3D;
      const t = tf.tensor1d(active.map((s, i) => s.schedule.timestepMap[at[i]!.index]!), 'int32');
      // Conditional batch, then the null condition (c = 0, empty context) for the items with phi != 1; a
      // guidance-distilled student gives the guided epsilon in the one conditional pass instead.
      const distilled = m.guidanceDistilled;
      let inX = xt, inRef = ref, inC = c, inCtx = ctx, inT = t;
      if (guided.length > 0 && !distilled) {
        const g = tf.tensor1d(guided, 'int32');
        inX = tf.concat([xt, tf.gather(xt, g)]);
        inRef = tf.concat([ref, tf.gather(ref, g)]);
        inC = tf.concat([c, tf.zeros([guided.length, c.shape[1]])]);
        inCtx = tf.concat([ctx, tf.zeros([guided.length, ctx.shape[1], ctx.shape[2]])]);
        inT = tf.concat([t, tf.gather(t, g)]);
      }
      const out = m.denoise(inX, inRef, inT, inC, inCtx, distilled ? tf.tensor1d(phi) : undefined);
      const { eps: epsAll, v: vAll } = dif.splitOutput(out);
      const epsC = epsAll.slice(0, B);
      const v = vAll.slice(0, B);
      let eps: tf.Tensor4D = epsC;
      if (guided.length > 0 && !distilled) {
        // Eq. 15: eps^ = phi eps(c) + (1 - phi) eps(0); unguided items read their own conditional eps.
        const uIdx = active.map((_, i) => (guided.includes(i) ? B + guided.indexOf(i) : i));
        const epsU = tf.gather(epsAll, tf.tensor1d(uIdx, 'int32'));
        const p = col(phi);
        eps = tf.add(tf.mul(p, epsC), tf.mul(tf.sub(1, p), epsU)) as tf.Tensor4D;
      }
      // The x0 estimate, clipped to the data range (guided-diffusion's clip_denoised).
      let x0 = dif.clipX0(dif.predictX0FromEps(xt, at, eps));
      if (icmGuided.length > 0) {
        // Guide from the clipped estimate (guided-diffusion's order): re-derive epsilon from the clipped x0 so that
        // the ICM shift below is not wiped out by a clip when x0 is far out of range.
        eps = dif.predictEpsFromX0(xt, at, x0);
        // Eq. 9 on the respaced schedule, then Eq. 14: mu^ = mu + psi Sigma grad_xt score (for the guided items).
        const logSigma = dif.learnedLogVariance(v, at);
        const g = tf.tensor1d(icmGuided, 'int32');
        const shiftSub = m.icmGuidanceShift(
          tf.gather(xt, g) as tf.Tensor4D,
          tf.gather(t, g) as tf.Tensor1D,
          tf.gather(c, g) as tf.Tensor2D,
          tf.gather(logSigma, g),
          icmGuided.map((i) => psi[i]!),
        );
        const gIdx = active.map((_, i) => (icmGuided.includes(i) ? 1 + icmGuided.indexOf(i) : 0));
        const dMu = tf.gather(tf.concat([tf.zerosLike(shiftSub.slice(0, 1)), shiftSub]), tf.tensor1d(gIdx, 'int32')) as tf.Tensor4D;
        // The solvers move along epsilon (or x0): the same mean shift expressed on eps through Eq. 8; the shifted
        // estimate is not clipped again.
        eps = tf.add(eps, dif.epsFromMeanShift(dMu, at)) as tf.Tensor4D;
        x0 = dif.predictX0FromEps(xt, at, eps);
      }
      return x0;
    });
  }

  /**
   * The x0 estimate of each state's next step (a best-of-n state's first candidate, as `predX0` shows), computed
   * now and kept, so the step itself reuses it instead of recomputing it: a preview of a step before the batch
   * takes it. Pixels [H, W, 3] in [-1, 1] per state (null for a finished one); the caller disposes them.
   */
  glimpse(states: SampleState[]): (tf.Tensor3D | null)[] {
    const firsts = states.map((s) => this.members([s instanceof BestOfState ? s.members[0]! : s])[0] ?? null);
    const todo = firsts.filter((s): s is State => s !== null && s.ahead?.step !== s.stepIndex);
    if (todo.length > 0) {
      const x0 = this.estimate(todo);
      const parts = tf.split(x0, todo.length) as tf.Tensor4D[];
      x0.dispose();
      todo.forEach((s, i) => {
        s.ahead?.x0.dispose();
        s.ahead = { step: s.stepIndex, x0: parts[i]! };
      });
    }
    return firsts.map((s) => (s ? tf.tidy(() => tf.clipByValue(this.model.codec.decode(s.ahead!.x0), -1, 1).squeeze([0]) as tf.Tensor3D) : null));
  }

  /** One denoising step for every unfinished state, batched in one U-Net call (plus one for the null condition). */
  step(states: SampleState[]): void {
    const active = this.members(states);
    if (active.length === 0) return;
    const dif = this.model.diffusion;
    const B = active.length;
    const at = this.positions(active);
    // DPM-Solver++(2M) takes a second-order step once it has the previous step's x0; DDIM is always first order.
    const orders: SolverOrder[] = active.map((s) => (s.solver === 'dpm++2m' && s.x0 ? 2 : 1));
    // Items glimpsed at this step already have their estimate; only the others go through the U-Net.
    const ready = (s: State) => s.ahead !== null && s.ahead.step === s.stepIndex;
    const fresh = active.filter((s) => !ready(s));
    const { sample, predX0 } = tf.tidy(() => {
      const xt = tf.concat(active.map((s) => s.x)) as tf.Tensor4D;
      const estimated = fresh.length > 0 ? (tf.split(this.estimate(fresh), fresh.length) as tf.Tensor4D[]) : [];
      const x0 = tf.concat(active.map((s) => (ready(s) ? s.ahead!.x0 : estimated[fresh.indexOf(s)]!))) as tf.Tensor4D;
      const x0Prev = orders.includes(2) ? (tf.concat(active.map((s) => s.x0 ?? s.x)) as tf.Tensor4D) : null;
      return { sample: dif.dpmSolverStep(xt, x0, x0Prev, at, orders), predX0: x0 };
    });
    const samples = tf.split(sample, B) as tf.Tensor4D[];
    const x0s = tf.split(predX0, B) as tf.Tensor4D[];
    tf.dispose([sample, predX0]);
    active.forEach((s, i) => {
      s.x.dispose();
      s.x0?.dispose();
      s.ahead?.x0.dispose();
      s.ahead = null;
      s.x = samples[i]!;
      s.x0 = x0s[i]!;
      s.stepIndex += 1;
    });
    for (const st of states) if (st instanceof BestOfState && st.selectionDue) st.selectEarly();
  }
}

export interface SampleOptions {
  /**
   * Called after every step with the step number (1-based), the total, and a getter of each item's x0 estimate
   * (decoded only when called: a latent codec's decoder per item and step is not free).
   */
  onStep?(i: number, total: number, predX0: () => RgbImage[]): void;
  /** Aborting stops before the next step and rejects with an AbortError. */
  signal?: AbortSignal;
}

/** Sample a batch of requests to completion (items may have different step counts). */
export async function sample(model: CddIcm, reqs: SampleRequest[], opts: SampleOptions = {}): Promise<RgbImage[]> {
  return (await sampleWithLatents(model, reqs, opts)).map((r) => r.image);
}

/** `sample`, also returning each result in codec space (the next turn's `referenceLatent`). */
export async function sampleWithLatents(
  model: CddIcm,
  reqs: SampleRequest[],
  opts: SampleOptions = {},
): Promise<{ image: RgbImage; latent: Float32Array }[]> {
  return sampleStates(model, reqs, opts, (s) => ({ image: s.result(), latent: s.latent() }));
}

/** Step the requests' states to the end and read each one with `take`. */
async function sampleStates<T>(model: CddIcm, reqs: SampleRequest[], opts: SampleOptions, take: (s: SampleState) => T): Promise<T[]> {
  const sampler = new Sampler(model);
  const states: SampleState[] = [];
  try {
    for (const r of reqs) states.push(sampler.prepare(r));
    const total = Math.max(0, ...states.map((s) => s.totalSteps));
    for (let i = 1; states.some((s) => !s.done); i++) {
      throwIfAborted(opts.signal);
      sampler.step(states);
      opts.onStep?.(i, total, () =>
        states.map((s) => {
          const p = tf.tidy(() => s.predX0().expandDims(0) as tf.Tensor4D);
          const [img] = tensorToImages(p);
          p.dispose();
          return img!;
        }),
      );
      // Let timers and abort events run between steps.
      await new Promise<void>((r) => setImmediate(r));
    }
    throwIfAborted(opts.signal);
    return states.map(take);
  } finally {
    for (const s of states) s.dispose();
  }
}

/** Seed of candidate k of a request: candidate 0 keeps the request's own seed, so best-of-1 is plain sampling. */
export function candidateSeed(seed: number, k: number): number {
  return k === 0 ? seed : hashSeed(seed, k) % 2147483647;
}

/** One request's kept sample, with the clean-image ICM score of every candidate (index = candidate). */
export interface BestOfResult {
  image: RgbImage;
  latent: Float32Array;
  /** The kept candidate. */
  candidate: number;
  /** Empty when n = 1 (nothing to choose, nothing scored). */
  scores: number[];
}

/** `sampleWithLatents` with every request sampled best-of-n (SampleRequest.candidates = n). */
export async function sampleBestOf(model: CddIcm, reqs: SampleRequest[], n: number, opts: SampleOptions = {}): Promise<BestOfResult[]> {
  if (!Number.isInteger(n) || n < 1) throw new Error(`candidates must be a positive integer, got ${n}`);
  return sampleStates(model, reqs.map((r) => ({ ...r, candidates: n })), opts, (s) => ({ image: s.result(), latent: s.latent(), ...s.choice() }));
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (!signal?.aborted) return;
  const e = new Error('sampling cancelled');
  e.name = 'AbortError';
  throw e;
}
