/**
 * Progress reports of one running turn, with previews encoded off the step loop.
 *
 * PNG encoding runs on libuv's thread pool (@napi-rs/canvas `encode('png')`), so the step loop never waits for
 * it. While a preview is encoding, a newer frame replaces any frame still waiting (latest frame wins: stale
 * frames are skipped, never queued up), and plain step reports are held back so that the step numbers a
 * subscriber sees only increase.
 */
import { encodePngAsync, type RgbImage } from '../data/index.js';
import type { TurnProgress } from './types.js';


interface Frame {
  step: number;
  etaMs: number;
  image: RgbImage;
}

export interface ProgressChannelOptions {
  turnId: string;
  sessionId: string;
  totalSteps: number;
  emit(p: TurnProgress): void;
  /** Called when emitting or encoding throws (the turn goes on). */
  onError(err: unknown): void;
  encode?(img: RgbImage): Promise<Buffer>;
}

export class ProgressChannel {
  private encoding: Promise<void> | null = null;
  private pending: Frame | null = null;
  private closed = false;
  private lastStep = 0;
  /** Frames replaced by a newer one before they were encoded. */
  skipped = 0;

  constructor(private readonly o: ProgressChannelOptions) {}

  /** A step finished; `image` is the predicted x0 when this step gets a preview. */
  step(step: number, etaMs: number, image: RgbImage | null): void {
    if (this.closed) return;
    if (image) {
      const frame = { step, etaMs, image };
      if (this.encoding) {
        if (this.pending) this.skipped++;
        this.pending = frame;
      } else {
        this.startEncoding(frame);
      }
      return;
    }
    // A plain report now would overtake the preview being encoded; the preview reports progress when it lands.
    if (this.encoding) return;
    this.send({ step, etaMs, previewPng: null });
  }

  /** The turn ended (finished, failed, cancelled or drained): nothing more is reported, in-flight frames are dropped. */
  close(): void {
    this.closed = true;
    this.pending = null;
  }

  /** A preview is being encoded. */
  get busy(): boolean {
    return this.encoding !== null;
  }

  /** Resolves when no encoding is in flight. */
  async idle(): Promise<void> {
    while (this.encoding) await this.encoding;
  }

  private startEncoding(frame: Frame): void {
    const encode = this.o.encode ?? encodePngAsync;
    this.encoding = encode(frame.image).then(
      (png) => {
        this.encoding = null;
        if (!this.closed) this.send({ step: frame.step, etaMs: frame.etaMs, previewPng: png });
        this.next();
      },
      (err: unknown) => {
        this.encoding = null;
        this.o.onError(err);
        this.next();
      },
    );
  }

  private next(): void {
    const p = this.pending;
    this.pending = null;
    if (p && !this.closed) this.startEncoding(p);
  }

  private send(p: { step: number; etaMs: number; previewPng: Buffer | null }): void {
    if (p.step <= this.lastStep) return;
    this.lastStep = p.step;
    try {
      this.o.emit({ turnId: this.o.turnId, sessionId: this.o.sessionId, totalSteps: this.o.totalSteps, ...p });
    } catch (err) {
      this.o.onError(err);
    }
  }
}
