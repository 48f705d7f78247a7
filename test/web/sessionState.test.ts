/// <reference lib="dom" />
// (web/src runs in the browser; its modules mention DOM types.)
/**
 * The web client's session state (web/src/sessionState.ts): a snapshot moved forward by events and progress
 * frames, and a snapshot fetched after a reconnect merged without going backwards.
 */
import { describe, expect, it } from 'vitest';
import type { ProgressFrame, SessionEvent, SessionView, TurnView } from '../../web/src/api.js';
import { activeTurn, applyEvent, applyFrame, currentBranch, currentCanvas, fromSnapshot, pendingReplies, queueAhead, turnTree, undoTarget } from '../../web/src/sessionState.js';

const img = (id: string) => ({ id, url: `/images/${id}.png`, width: 64, height: 64 });
const tess = { id: 'p1', name: 'Tess', role: 'TELLER' as const };
const drew = { id: 'p2', name: 'Drew', role: 'DRAWER' as const };

function turn(index: number, over: Partial<TurnView> = {}): TurnView {
  return {
    id: `t${index}`,
    index,
    instruction: `turn ${index}`,
    text: `turn ${index}`,
    status: 'SUCCEEDED',
    queuePosition: null,
    error: null,
    createdAt: `2026-01-01T00:00:0${index}.000Z`,
    author: tess,
    parent: index > 1 ? { id: `t${index - 1}` } : null,
    resultImage: img(`i${index}`),
    settings: { steps: 4, seed: index },
    ...over,
  };
}

function session(over: Partial<SessionView> = {}): SessionView {
  return {
    id: 's1',
    title: 'Blocks',
    dataset: 'iclevr',
    model: 'tiny',
    allowDrawerTurns: false,
    background: img('bg'),
    headTurn: null,
    participants: [],
    messages: [],
    turns: [],
    me: tess,
    ...over,
  };
}

const event = (e: Partial<SessionEvent> & Pick<SessionEvent, 'kind'>): SessionEvent => ({
  sessionId: 's1',
  at: '2026-01-01T00:00:10.000Z',
  headTurnId: null,
  participant: null,
  message: null,
  turn: null,
  ...e,
});

const frame = (f: Partial<ProgressFrame>): ProgressFrame => ({
  turnId: 't1',
  sequence: 0,
  step: 1,
  totalSteps: 4,
  etaMs: 100,
  preview: 'data:image/png;base64,AAA',
  final: false,
  image: null,
  ...f,
});

describe('web client session state', () => {
  it('shows the background until a turn succeeds, then the head turn’s result', () => {
    let s = fromSnapshot(session());
    expect(currentCanvas(s).image.id).toBe('bg');
    const queued = turn(1, { status: 'QUEUED', resultImage: null, queuePosition: 0 });
    s = applyEvent(s, event({ kind: 'TURN_QUEUED', turn: queued }));
    expect(s.session.headTurn?.id).toBe('t1');
    expect(currentCanvas(s).image.id).toBe('bg');
    expect(activeTurn(s)?.id).toBe('t1');
    s = applyFrame(s, frame({ sequence: 0, step: 1 }));
    expect(s.previews.t1?.step).toBe(1);
    expect(s.session.turns[0]!.status).toBe('RUNNING');
    s = applyFrame(s, frame({ sequence: 2, step: 3, preview: 'data:image/png;base64,BBB' }));
    // A frame older than the one shown is ignored.
    s = applyFrame(s, frame({ sequence: 1, step: 2 }));
    expect(s.previews.t1?.sequence).toBe(2);
    s = applyFrame(s, frame({ sequence: 3, step: 4, final: true, preview: null, image: img('i1') }));
    expect(s.previews.t1).toBeUndefined();
    expect(currentCanvas(s).image.id).toBe('i1');
    expect(activeTurn(s)).toBeUndefined();
  });

  it('skips failed turns back to the nearest succeeded ancestor, and follows HEAD_MOVED', () => {
    let s = fromSnapshot(session({ headTurn: { id: 't3' }, turns: [turn(1), turn(2), turn(3, { status: 'FAILED', resultImage: null })] }));
    expect(currentCanvas(s).image.id).toBe('i2');
    // Undo goes back from what the canvas shows (turn 2) to the succeeded turn before it.
    expect(undoTarget(s)?.id).toBe('t1');
    s = applyEvent(s, event({ kind: 'HEAD_MOVED', headTurnId: 't1' }));
    expect(undoTarget(s)).toBeNull();
    expect(currentCanvas(s).image.id).toBe('i1');
    expect([...currentBranch(s)]).toEqual(['t1']);
  });

  it('a snapshot fetched after a reconnect adds what was missed and never moves a turn back', () => {
    let s = fromSnapshot(session({ turns: [turn(1, { status: 'RUNNING', resultImage: null })] }));
    s = applyFrame(s, frame({ final: true, sequence: 4, image: img('i1') }));
    // The snapshot was read before the turn finished, and has a message the events missed.
    const stale = session({
      turns: [turn(1, { status: 'RUNNING', resultImage: null })],
      messages: [{ id: 'm1', text: 'which side?', createdAt: '2026-01-01T00:00:05.000Z', turnId: null, author: drew }],
    });
    s = fromSnapshot(stale, s);
    expect(s.session.turns[0]!.status).toBe('SUCCEEDED');
    expect(s.session.turns[0]!.resultImage?.id).toBe('i1');
    expect(s.session.messages.map((m) => m.text)).toEqual(['which side?']);
    expect(pendingReplies(s).map((m) => m.id)).toEqual(['m1']);
    // The next turn takes the drawer's reply into its text.
    s = applyEvent(s, event({ kind: 'TURN_QUEUED', turn: turn(2, { status: 'QUEUED', resultImage: null, createdAt: '2026-01-01T00:00:06.000Z' }) }));
    expect(pendingReplies(s)).toEqual([]);
  });

  it('counts the turns ahead in the session queue', () => {
    const s = fromSnapshot(session({ turns: [turn(1, { status: 'RUNNING', resultImage: null }), turn(2, { status: 'QUEUED', resultImage: null }), turn(3, { status: 'QUEUED', resultImage: null })] }));
    expect(queueAhead(s, s.session.turns[2]!)).toBe(2);
    expect(activeTurn(s)?.id).toBe('t1');
  });

  it('builds the branch tree from parent links', () => {
    const roots = turnTree([turn(1), turn(2), turn(3, { parent: { id: 't1' } }), turn(4, { parent: { id: 'gone' } })]);
    expect(roots.map((r) => r.turn.id)).toEqual(['t1', 't4']);
    expect(roots[0]!.children.map((c) => c.turn.id)).toEqual(['t2', 't3']);
  });
});
