/**
 * One session as the client knows it: a snapshot from the `session` query, moved forward by `sessionEvents` and
 * `turnProgress`. Pure functions (no DOM), so a snapshot fetched after a reconnect can be merged with what the
 * events already said without going backwards.
 */
import type { ImageRef, MessageView, ParticipantView, ProgressFrame, SessionEvent, SessionView, TurnStatus, TurnView } from './api.js';

export interface LiveSession {
  session: SessionView;
  /** The newest preview frame of each turn still being denoised. */
  previews: Record<string, ProgressFrame>;
}

const STATUS_RANK: Record<TurnStatus, number> = { QUEUED: 0, RUNNING: 1, SUCCEEDED: 2, FAILED: 2, CANCELLED: 2 };

export const isFinished = (t: TurnView): boolean => STATUS_RANK[t.status] === 2;

/** The later of two views of one turn (a status never moves back; a result image once known stays). */
function newerTurn(a: TurnView | undefined, b: TurnView): TurnView {
  if (!a) return b;
  const later = STATUS_RANK[b.status] >= STATUS_RANK[a.status] ? b : a;
  return { ...later, resultImage: later.resultImage ?? a.resultImage ?? b.resultImage };
}

function upsert<T extends { id: string }>(list: T[], item: T, merge: (old: T | undefined, next: T) => T = (_o, n) => n): T[] {
  const i = list.findIndex((x) => x.id === item.id);
  if (i < 0) return [...list, item];
  const next = list.slice();
  next[i] = merge(list[i], item);
  return next;
}

const byIndex = (a: TurnView, b: TurnView): number => a.index - b.index;
const byTime = (a: MessageView, b: MessageView): number => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id);

/** A fresh snapshot, merged with what the client already had (events may have been newer than the query). */
export function fromSnapshot(view: SessionView, previous?: LiveSession): LiveSession {
  if (!previous || previous.session.id !== view.id) return { session: { ...view, turns: [...view.turns].sort(byIndex) }, previews: {} };
  let turns = previous.session.turns;
  for (const t of view.turns) turns = upsert(turns, t, newerTurn);
  let messages = previous.session.messages;
  for (const m of view.messages) messages = upsert(messages, m);
  const previews = Object.fromEntries(
    Object.entries(previous.previews).filter(([id]) => {
      const t = turns.find((x) => x.id === id);
      return t !== undefined && !isFinished(t);
    }),
  );
  return { session: { ...view, turns: [...turns].sort(byIndex), messages: [...messages].sort(byTime) }, previews };
}

export function applyEvent(state: LiveSession, e: SessionEvent): LiveSession {
  if (e.sessionId !== state.session.id) return state;
  let s = state.session;
  let previews = state.previews;
  if (e.participant) {
    const p: ParticipantView = e.participant;
    s = { ...s, participants: upsert(s.participants, p) };
  }
  if (e.message) s = { ...s, messages: upsert(s.messages, e.message).sort(byTime) };
  if (e.turn) {
    const t = e.turn;
    s = { ...s, turns: upsert(s.turns, t, newerTurn).sort(byIndex) };
    if (e.kind === 'TURN_QUEUED') {
      // The server appended the drawer replies not yet in a turn to this one's text (CoDraw).
      s = {
        ...s,
        headTurn: { id: t.id },
        messages: s.messages.map((m) => (m.turnId === null && m.author.role === 'DRAWER' && m.createdAt <= t.createdAt ? { ...m, turnId: t.id } : m)),
      };
    }
    if (isFinished(t) && previews[t.id]) {
      const { [t.id]: _done, ...rest } = previews;
      previews = rest;
    }
  }
  if (e.kind === 'HEAD_MOVED') s = { ...s, headTurn: e.headTurnId ? { id: e.headTurnId } : null };
  return { session: s, previews };
}

export function applyFrame(state: LiveSession, f: ProgressFrame): LiveSession {
  const turn = state.session.turns.find((t) => t.id === f.turnId);
  if (f.final) {
    const { [f.turnId]: _done, ...previews } = state.previews;
    if (!turn) return { ...state, previews };
    const done: TurnView = { ...turn, status: 'SUCCEEDED', queuePosition: null, resultImage: f.image ?? turn.resultImage };
    return { session: { ...state.session, turns: upsert(state.session.turns, done) }, previews };
  }
  // A late preview of a finished turn, or an older frame than the one shown (frames may be dropped, never reordered).
  if (turn && isFinished(turn)) return state;
  const shown = state.previews[f.turnId];
  if (shown && shown.sequence >= f.sequence) return state;
  const running = turn && turn.status === 'QUEUED' ? { ...turn, status: 'RUNNING' as const, queuePosition: 0 } : turn;
  const session = running && running !== turn ? { ...state.session, turns: upsert(state.session.turns, running) } : state.session;
  return { session, previews: { ...state.previews, [f.turnId]: f } };
}

// ---------------------------------------------------------------- what the page shows

export function turnById(state: LiveSession, id: string | null | undefined): TurnView | undefined {
  return id ? state.session.turns.find((t) => t.id === id) : undefined;
}

/** The current canvas: the head's result, or its nearest succeeded ancestor's, or the background. */
export function currentCanvas(state: LiveSession): { image: ImageRef; turn: TurnView | null } {
  const seen = new Set<string>();
  let t = turnById(state, state.session.headTurn?.id);
  while (t && !seen.has(t.id)) {
    seen.add(t.id);
    if (t.status === 'SUCCEEDED' && t.resultImage) return { image: t.resultImage, turn: t };
    t = turnById(state, t.parent?.id);
  }
  return { image: state.session.background, turn: null };
}

/** Undo: the succeeded turn before the one the canvas shows (null: nothing to go back to but the background). */
export function undoTarget(state: LiveSession): TurnView | null {
  const shown = currentCanvas(state).turn;
  const seen = new Set<string>();
  let t = turnById(state, shown?.parent?.id);
  while (t && !seen.has(t.id)) {
    seen.add(t.id);
    if (t.status === 'SUCCEEDED') return t;
    t = turnById(state, t.parent?.id);
  }
  return null;
}

/** The turn the canvas panel follows: the running one, else the next queued. */
export function activeTurn(state: LiveSession): TurnView | undefined {
  const active = state.session.turns.filter((t) => !isFinished(t));
  return active.find((t) => t.status === 'RUNNING') ?? active[0];
}

/** Turns ahead of this one in the session's queue (they run one at a time, in submission order). */
export function queueAhead(state: LiveSession, turn: TurnView): number {
  return state.session.turns.filter((t) => !isFinished(t) && t.index < turn.index).length;
}

/** Drawer replies that the next turn's text will include. */
export function pendingReplies(state: LiveSession): MessageView[] {
  return state.session.messages.filter((m) => m.turnId === null && m.author.role === 'DRAWER');
}

export interface TurnNode {
  turn: TurnView;
  children: TurnNode[];
}

/** The turns as a tree by parent links (turns whose parent fell out of the fetched window become roots). */
export function turnTree(turns: readonly TurnView[]): TurnNode[] {
  const nodes = new Map(turns.map((t) => [t.id, { turn: t, children: [] as TurnNode[] }]));
  const roots: TurnNode[] = [];
  for (const t of [...turns].sort(byIndex)) {
    const node = nodes.get(t.id)!;
    const parent = t.parent ? nodes.get(t.parent.id) : undefined;
    (parent ? parent.children : roots).push(node);
  }
  return roots;
}

/** Ids of the turns from the root to the head (the current branch). */
export function currentBranch(state: LiveSession): Set<string> {
  const ids = new Set<string>();
  let t = turnById(state, state.session.headTurn?.id);
  while (t && !ids.has(t.id)) {
    ids.add(t.id);
    t = turnById(state, t.parent?.id);
  }
  return ids;
}
