import { describe, expect, test } from 'vitest';
import { FairQueue, type QueuedTurn } from '../../src/engine/fairQueue.js';

const turn = (sessionId: string, turnId: string): QueuedTurn => ({ sessionId, turnId, enqueuedAt: 0 });

/** Serve the queue to the end, one turn in flight at a time (each released before the next is taken). */
function serveAll(q: FairQueue): string[] {
  const order: string[] = [];
  for (let t = q.next(); t; t = q.next()) {
    order.push(t.turnId);
    q.release(t.sessionId);
  }
  return order;
}

describe('FairQueue', () => {
  test('round-robin over sessions, FIFO within a session', () => {
    const q = new FairQueue();
    for (let i = 1; i <= 5; i++) q.push(turn('A', `a${i}`));
    q.push(turn('B', 'b1'));
    q.push(turn('B', 'b2'));
    q.push(turn('C', 'c1'));
    expect(q.length).toBe(8);
    expect(serveAll(q)).toEqual(['a1', 'b1', 'c1', 'a2', 'b2', 'a3', 'a4', 'a5']);
    expect(q.length).toBe(0);
  });

  test('a session has one turn in flight at a time', () => {
    const q = new FairQueue();
    q.push(turn('A', 'a1'));
    q.push(turn('A', 'a2'));
    expect(q.next()?.turnId).toBe('a1');
    expect(q.next()).toBeNull();
    q.push(turn('B', 'b1'));
    expect(q.next()?.turnId).toBe('b1');
    q.release('A');
    expect(q.next()?.turnId).toBe('a2');
  });

  test('a session that arrives later waits behind never-served sessions only, and before the ones just served', () => {
    const q = new FairQueue();
    q.push(turn('A', 'a1'));
    q.push(turn('A', 'a2'));
    q.push(turn('B', 'b1'));
    const a1 = q.next()!;
    q.push(turn('C', 'c1'));
    q.release(a1.sessionId);
    expect(serveAll(q)).toEqual(['b1', 'c1', 'a2']);
  });

  test('a session that went idle keeps its place in the round when it comes back', () => {
    const r = new FairQueue();
    r.push(turn('A', 'a1'));
    r.push(turn('B', 'b1'));
    r.push(turn('B', 'b2'));
    r.push(turn('B', 'b3'));
    const first = r.next()!; // a1
    r.release(first.sessionId); // A is idle and dropped from the queues
    const second = r.next()!; // b1
    r.push(turn('A', 'a2')); // A comes back while b1 runs
    r.release(second.sessionId);
    // A was served before B's last turn: it goes next, then B, alternating.
    expect(serveAll(r)).toEqual(['a2', 'b2', 'b3']);
    expect([first.turnId, second.turnId]).toEqual(['a1', 'b1']);
  });

  test('remove takes a waiting turn out; has and waiting reflect the queue', () => {
    const q = new FairQueue();
    q.push(turn('A', 'a1'));
    q.push(turn('A', 'a2'));
    expect(q.has('a2')).toBe(true);
    expect(q.remove('a2')?.turnId).toBe('a2');
    expect(q.remove('a2')).toBeNull();
    expect(q.has('a2')).toBe(false);
    expect(q.waiting().map((t) => t.turnId)).toEqual(['a1']);
    expect(q.length).toBe(1);
  });
});
