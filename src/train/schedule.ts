/**
 * The paper's model-selection rule (section 4.2): compute the validation loss every K steps; if it went down,
 * keep (save) the model; otherwise restore the last kept model and halve the learning rate; stop after the
 * 5th restoration. A non-finite validation loss counts as "worse". Pure logic, so it can be tested alone and
 * serialised into trainer.json.
 */

export type ValidationAction = 'improved' | 'restore' | 'stop';

export interface ValidationState {
  best: number | null;
  bestStep: number | null;
  restores: number;
  lr: number;
}

export class ValidationSchedule {
  best: number | null = null;
  bestStep: number | null = null;
  restores = 0;
  lr: number;

  constructor(
    initialLr: number,
    readonly maxRestores = 5,
    readonly decay = 0.5,
  ) {
    this.lr = initialLr;
  }

  /**
   * Record a validation loss measured at `step`. 'improved': save the model as the new best.
   * 'restore': restore the best model and continue at the (already halved) `lr`.
   * 'stop': this was the last allowed restoration: restore the best model and end the stage.
   */
  observe(loss: number, step: number): ValidationAction {
    if (Number.isFinite(loss) && (this.best === null || loss < this.best)) {
      this.best = loss;
      this.bestStep = step;
      return 'improved';
    }
    this.restores++;
    this.lr *= this.decay;
    return this.restores >= this.maxRestores ? 'stop' : 'restore';
  }

  state(): ValidationState {
    return { best: this.best, bestStep: this.bestStep, restores: this.restores, lr: this.lr };
  }

  load(s: ValidationState): void {
    this.best = s.best;
    this.bestStep = s.bestStep;
    this.restores = s.restores;
    this.lr = s.lr;
  }
}
