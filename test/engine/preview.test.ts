import { describe, expect, test } from 'vitest';
import { blankImage, decodePng, type RgbImage } from '../../src/data/index.js';
import { encodePngAsync } from '../../src/data/index.js';
import { ProgressChannel } from '../../src/engine/preview.js';
import type { TurnProgress } from '../../src/engine/index.js';

/**
 * An encoder whose jobs finish when the test says so (the real encoder, held back). `release` resolves once the
 * job's PNG has been handed to the channel and every callback it queued has run, so the test never guesses how
 * long the thread pool takes (a busy CI machine once needed more than a fixed 20 ms).
 */
function heldEncoder() {
  const jobs: Array<{ img: RgbImage; release: () => Promise<void> }> = [];
  return {
    jobs,
    encode(img: RgbImage): Promise<Buffer> {
      return new Promise((resolve, reject) => {
        jobs.push({ img, release: () => encodePngAsync(img).then(resolve, reject).then(flush) });
      });
    },
  };
}

/** Lets every queued promise callback run. */
const flush = () => new Promise<void>((r) => setImmediate(r));

const frame = (v: number): RgbImage => blankImage(4, 4, [v, v, v]);

describe('previews', () => {
  test('encodePngAsync gives a PNG of the image', async () => {
    const img = blankImage(16, 8, [10, 200, 30]);
    img.data[0] = 255;
    const back = await decodePng(await encodePngAsync(img));
    expect(back).toEqual(img);
  });

  test('latest frame wins while encoding, step numbers only increase, nothing after close', async () => {
    const enc = heldEncoder();
    const out: TurnProgress[] = [];
    const errors: unknown[] = [];
    const ch = new ProgressChannel({
      turnId: 't', sessionId: 's', totalSteps: 20, emit: (p) => out.push(p), onError: (e) => errors.push(e), encode: (i) => enc.encode(i),
    });
    ch.step(1, 900, null);
    ch.step(2, 800, frame(2)); // starts encoding
    ch.step(3, 700, null); // held back: would overtake the preview
    ch.step(4, 600, frame(4)); // waits
    ch.step(6, 400, frame(6)); // replaces 4 (stale)
    expect(out.map((p) => p.step)).toEqual([1]);
    expect(enc.jobs).toHaveLength(1);
    await enc.jobs[0]!.release();
    expect(out.map((p) => [p.step, p.previewPng !== null])).toEqual([[1, false], [2, true]]);
    expect(enc.jobs).toHaveLength(2);
    expect(enc.jobs[1]!.img.data[0]).toBe(6);
    expect(ch.skipped).toBe(1);
    await enc.jobs[1]!.release();
    ch.step(7, 300, null);
    expect(out.map((p) => p.step)).toEqual([1, 2, 6, 7]);
    expect((await decodePng(out[2]!.previewPng!)).data[0]).toBe(6);
    expect(out[2]).toMatchObject({ turnId: 't', sessionId: 's', totalSteps: 20, etaMs: 400 });
    // A frame encoding when the turn ends is dropped.
    ch.step(8, 200, frame(8));
    ch.close();
    await enc.jobs[2]!.release();
    await ch.idle();
    ch.step(9, 100, null);
    expect(out.map((p) => p.step)).toEqual([1, 2, 6, 7]);
    expect(errors).toEqual([]);
  });

  test('a failing encoder or subscriber is reported and the channel goes on', async () => {
    const out: TurnProgress[] = [];
    const errors: unknown[] = [];
    let fail = true;
    const ch = new ProgressChannel({
      turnId: 't', sessionId: 's', totalSteps: 5,
      emit: (p) => {
        if (p.step === 3) throw new Error('subscriber broke');
        out.push(p);
      },
      onError: (e) => errors.push(e),
      encode: async (i) => {
        if (fail) throw new Error('encode broke');
        return encodePngAsync(i);
      },
    });
    ch.step(1, 10, frame(1));
    await ch.idle();
    fail = false;
    ch.step(2, 10, frame(2));
    await ch.idle();
    ch.step(3, 10, null);
    ch.step(4, 10, null);
    expect(out.map((p) => p.step)).toEqual([2, 4]);
    expect(errors.map((e) => (e as Error).message)).toEqual(['encode broke', 'subscriber broke']);
  });
});
