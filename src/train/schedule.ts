/**
 * The paper's model-selection rule (section 4.2): compute the validation loss every K steps; if it went down,
 * keep (save) the model; otherwise restore the last kept model and halve the learning rate; stop after the
 * 5th restoration. A non-finite validation loss counts as "worse". Pure logic, so it can be tested alone and
 * serialised into trainer.json.
 *
 * `patience` (not the paper's; default 1 = the paper's rule) is how many validations in a row may fail to improve
 * before a restore: a model that starts near its best wanders from one validation to the next (the batches and
 * noise are fixed, the weights are not), and the paper's rule then halves the rate on one worse reading.
 * Non-finite losses restore at once whatever the patience.
 */

export type ValidationAction = 'improved' | 'wait' | 'restore' | 'stop';

export interface ValidationState {
  best: number | null;
  bestStep: number | null;
  restores: number;
  lr: number;
  /** Validations in a row without improvement since the last improvement or restore (absent in old states). */
  misses?: number;
}

export class ValidationSchedule {
  best: number | null = null;
  bestStep: number | null = null;
  restores = 0;
  misses = 0;
  lr: number;

  readonly maxRestores: number;
  readonly decay: number;
  readonly patience: number;

  constructor(initialLr: number, opts: { maxRestores?: number; decay?: number; patience?: number } = {}) {
    this.maxRestores = opts.maxRestores ?? 5;
    this.decay = opts.decay ?? 0.5;
    this.patience = opts.patience ?? 1;
    if (!Number.isInteger(this.patience) || this.patience < 1) throw new RangeError(`patience must be an integer >= 1, got ${this.patience}`);
    this.lr = initialLr;
  }

  /**
   * Record a validation loss measured at `step`. 'improved': save the model as the new best.
   * 'wait': not better, but within the patience: carry on training the current weights.
   * 'restore': restore the best model and continue at the (already halved) `lr`.
   * 'stop': this was the last allowed restoration: restore the best model and end the stage.
   */
  observe(loss: number, step: number): ValidationAction {
    if (Number.isFinite(loss) && (this.best === null || loss < this.best)) {
      this.best = loss;
      this.bestStep = step;
      this.misses = 0;
      return 'improved';
    }
    this.misses++;
    if (Number.isFinite(loss) && this.misses < this.patience) return 'wait';
    this.misses = 0;
    this.restores++;
    this.lr *= this.decay;
    return this.restores >= this.maxRestores ? 'stop' : 'restore';
  }

  state(): ValidationState {
    return { best: this.best, bestStep: this.bestStep, restores: this.restores, lr: this.lr, misses: this.misses };
  }

  load(s: ValidationState): void {
    this.best = s.best;
    this.bestStep = s.bestStep;
    this.restores = s.restores;
    this.lr = s.lr;
    this.misses = s.misses ?? 0;
  }
}
