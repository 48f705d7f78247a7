/**
 * The pub/sub seam: ordered delivery, latest-frame-wins only for backlogged subscribers, lifecycle items never
 * dropped, clean ends. Then the same through the sessions service with the real engine: a subscriber whose
 * socket is backlogged during a whole turn gets only the newest preview and the final frame.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessPubSub } from '../../src/sessions/index.js';
import type { TurnProgressFrame } from '../../src/sessions/index.js';
import { createSession, startTestServer, submit, waitTurn, type TestServer } from '../server/harness.js';

interface Item {
  kind: 'preview' | 'final' | 'event';
  turn: string;
  n: number;
}
const key = (i: Item): string | null => (i.kind === 'preview' ? `p:${i.turn}` : null);

async function take<T>(it: AsyncIterator<T>, n: number): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i++) {
    const r = await it.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

describe('InProcessPubSub', () => {
  it('delivers every item in order to every subscriber when they keep up', async () => {
    const ps = new InProcessPubSub();
    const a = ps.subscribe<Item>('t', { conflationKey: key });
    const b = ps.subscribe<Item>('t', { conflationKey: key });
    const items: Item[] = [1, 2, 3].map((n) => ({ kind: 'preview', turn: 'x', n }));
    items.forEach((i) => ps.publish('t', i));
    ps.publish('other', { kind: 'event', turn: 'x', n: 9 });
    expect(await take(a, 3)).toEqual(items);
    expect(await take(b, 3)).toEqual(items);
  });

  it('for a backlogged subscriber, previews conflate per turn (latest wins) and lifecycle items are all kept in order', async () => {
    const ps = new InProcessPubSub();
    let backlogged = true;
    const slow = ps.subscribe<Item>('t', { conflationKey: key, backlogged: () => backlogged });
    const fast = ps.subscribe<Item>('t', { conflationKey: key });
    const seq: Item[] = [
      { kind: 'preview', turn: 'x', n: 1 },
      { kind: 'event', turn: 'x', n: 2 },
      { kind: 'preview', turn: 'x', n: 3 },
      { kind: 'preview', turn: 'y', n: 4 },
      { kind: 'preview', turn: 'x', n: 5 },
      { kind: 'final', turn: 'x', n: 6 },
      { kind: 'event', turn: 'x', n: 7 },
    ];
    const pending = take(slow, 5); // waiting while backlogged
    seq.forEach((i) => ps.publish('t', i));
    await new Promise((r) => setTimeout(r, 30));
    backlogged = false;
    expect((await pending).map((i) => i.n)).toEqual([2, 4, 5, 6, 7]);
    expect((slow as unknown as { dropped: number }).dropped).toBe(2);
    expect((await take(fast, 7)).map((i) => i.n)).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('return() ends a subscription, runs onClose once and detaches it; close() ends all', async () => {
    const ps = new InProcessPubSub();
    let closes = 0;
    const s = ps.subscribe<number>('t', { onClose: () => closes++ });
    const waiting = s.next();
    expect(ps.subscriberCount('t')).toBe(1);
    await s.return();
    await s.return();
    expect(await waiting).toEqual({ value: undefined, done: true });
    expect(closes).toBe(1);
    expect(ps.subscriberCount('t')).toBe(0);
    const t = ps.subscribe<number>('u');
    ps.close();
    expect(await t.next()).toEqual({ value: undefined, done: true });
  });
});

describe('latest frame wins through the sessions service (real engine)', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ previewEvery: 1 });
  });
  afterAll(async () => {
    await s?.stop();
  });

  it('a backlogged subscriber gets the newest preview and the final frame; a live one gets every frame', async () => {
    const { sessionId, teller } = await createSession(s);
    const { hashToken } = await import('../../src/sessions/index.js');
    let backlogged = true;
    const slow = await s.app.service.subscribeProgress(hashToken(teller), sessionId, () => backlogged);
    const live = await s.app.service.subscribeProgress(hashToken(teller), sessionId, () => false);
    const liveFrames: TurnProgressFrame[] = [];
    const liveDone = (async () => {
      for await (const f of live) {
        liveFrames.push(f);
        if (f.final) break;
      }
    })();
    const slowFirst = slow.next();
    const t = await submit(s, teller, sessionId, 'add a red cube in the middle', { steps: 8 });
    await waitTurn(s, teller, t.id);
    await liveDone;
    backlogged = false;
    const got = [(await slowFirst).value as TurnProgressFrame, ...(await take(slow, 1))];
    await slow.return();
    expect(liveFrames.length).toBeGreaterThan(2);
    expect(liveFrames.map((f) => f.sequence)).toEqual(liveFrames.map((_, i) => i));
    // The slow one: exactly the newest preview the live one saw, then the final frame.
    expect(got.map((f) => f.final)).toEqual([false, true]);
    expect(got[0]!.sequence).toBe(liveFrames[liveFrames.length - 2]!.sequence);
    expect(got[1]!.image?.id).toBe(liveFrames[liveFrames.length - 1]!.image?.id);
  });
});
