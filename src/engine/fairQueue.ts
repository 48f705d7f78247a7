/**
 * Per-session FIFO queues served round-robin over sessions: the next turn comes from the least recently served
 * session that has a queued turn and no turn in flight (sessions not served yet first, in order of arrival). A
 * session with many queued turns therefore gets one turn per round, like every other waiting session, instead
 * of a first-come monopoly.
 */

export interface QueuedTurn {
  sessionId: string;
  turnId: string;
  enqueuedAt: number;
}

interface SessionQueue {
  turns: QueuedTurn[];
  /** A turn of this session is starting, running or having its end recorded: the next one must wait for it. */
  busy: boolean;
  arrival: number;
}

/** Sessions whose last service is remembered after their queue empties (the oldest are forgotten first). */
const REMEMBERED_SESSIONS = 10_000;

export class FairQueue {
  private readonly sessions = new Map<string, SessionQueue>();
  /** Serve counter at each session's last turn; a session never served ranks first. Outlives idle queues. */
  private readonly lastServed = new Map<string, number>();
  private count = 0;
  private served = 0;
  private arrivals = 0;

  /** Turns waiting (not counting the ones in flight). */
  get length(): number {
    return this.count;
  }

  has(turnId: string): boolean {
    for (const s of this.sessions.values()) if (s.turns.some((t) => t.turnId === turnId)) return true;
    return false;
  }

  push(turn: QueuedTurn): void {
    let s = this.sessions.get(turn.sessionId);
    if (!s) {
      s = { turns: [], busy: false, arrival: ++this.arrivals };
      this.sessions.set(turn.sessionId, s);
    }
    s.turns.push(turn);
    this.count++;
  }

  /** Remove a waiting turn; null if it is not waiting. */
  remove(turnId: string): QueuedTurn | null {
    for (const [id, s] of this.sessions) {
      const i = s.turns.findIndex((t) => t.turnId === turnId);
      if (i < 0) continue;
      const [t] = s.turns.splice(i, 1);
      this.count--;
      this.forgetIfIdle(id, s);
      return t!;
    }
    return null;
  }

  /** The next turn by round-robin; its session becomes busy until `release`. */
  next(): QueuedTurn | null {
    let best: { id: string; s: SessionQueue; last: number } | null = null;
    for (const [id, s] of this.sessions) {
      if (s.busy || s.turns.length === 0) continue;
      const last = this.lastServed.get(id) ?? 0;
      if (!best || last < best.last || (last === best.last && s.arrival < best.s.arrival)) best = { id, s, last };
    }
    if (!best) return null;
    const t = best.s.turns.shift()!;
    this.count--;
    best.s.busy = true;
    // Re-insert so the map's order is the order of service, oldest first, for pruning.
    this.lastServed.delete(best.id);
    this.lastServed.set(best.id, ++this.served);
    if (this.lastServed.size > REMEMBERED_SESSIONS) this.lastServed.delete(this.lastServed.keys().next().value!);
    return t;
  }

  /** The session's turn in flight has ended: its next turn may start. */
  release(sessionId: string): void {
    const s = this.sessions.get(sessionId);
    if (!s) return;
    s.busy = false;
    this.forgetIfIdle(sessionId, s);
  }

  /** Waiting turns, session by session (for status and tests). */
  waiting(): QueuedTurn[] {
    return [...this.sessions.values()].flatMap((s) => s.turns);
  }

  private forgetIfIdle(id: string, s: SessionQueue): void {
    if (!s.busy && s.turns.length === 0) this.sessions.delete(id);
  }
}
