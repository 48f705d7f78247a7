/**
 * Per-session FIFO queues served round-robin over sessions: the next turn comes from the least recently served
 * session that has a queued turn and no turn in flight. A session with many queued turns therefore gets one turn
 * per round, like every other session, instead of a first-come monopoly.
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
}

export class FairQueue {
  /** Insertion order is the round-robin order: a served session moves to the back. */
  private readonly sessions = new Map<string, SessionQueue>();
  private count = 0;

  /** Turns waiting (not counting the ones in flight). */
  get length(): number {
    return this.count;
  }

  push(turn: QueuedTurn): void {
    let s = this.sessions.get(turn.sessionId);
    if (!s) {
      s = { turns: [], busy: false };
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
    for (const [id, s] of this.sessions) {
      if (s.busy || s.turns.length === 0) continue;
      const t = s.turns.shift()!;
      this.count--;
      s.busy = true;
      // Move the served session to the back of the round.
      this.sessions.delete(id);
      this.sessions.set(id, s);
      return t;
    }
    return null;
  }

  /** The session's turn in flight has ended: its next turn may start. */
  release(sessionId: string): void {
    const s = this.sessions.get(sessionId);
    if (!s) return;
    s.busy = false;
    this.forgetIfIdle(sessionId, s);
  }

  /** Waiting turns in the order they would be considered (for status and tests). */
  waiting(): QueuedTurn[] {
    return [...this.sessions.values()].flatMap((s) => s.turns);
  }

  private forgetIfIdle(id: string, s: SessionQueue): void {
    if (!s.busy && s.turns.length === 0) this.sessions.delete(id);
  }
}
