/**
 * Who is in a session and who is listening: participants, their live subscriptions (online while they have one),
 * and leaving, which ends them all.
 */
import { partLogger } from '../log/index.js';
import type { SessionsCore } from './core.js';
import type { Subscription } from './events.js';
import type { ParticipantRecord, SessionEvent, TurnProgressFrame } from './records.js';
import { progressTopic, sessionTopic } from './topics.js';

const log = partLogger('sessions');

export class Presence {
  /** Live subscriptions per participant (online while > 0). */
  private readonly connections = new Map<string, number>();
  /** Live subscriptions per participant. */
  private readonly live = new Map<string, Set<Subscription<unknown>>>();

  constructor(private readonly core: SessionsCore) {}

  participant(id: string): Promise<ParticipantRecord> {
    return this.core.db.participant.findUniqueOrThrow({ where: { id } });
  }

  participants(sessionId: string): Promise<ParticipantRecord[]> {
    return this.core.db.participant.findMany({ where: { sessionId }, orderBy: { joinedAt: 'asc' } });
  }

  async leaveSession(tokenHash: string | null, sessionId: string): Promise<ParticipantRecord> {
    const me = await this.core.requireMember(tokenHash, sessionId);
    const p = await this.core.writes.run(() =>
      this.core.db.participant.update({ where: { id: me.id }, data: { leftAt: new Date(), online: false } }),
    );
    this.core.emit({ kind: 'PARTICIPANT_LEFT', sessionId, participant: p });
    this.endSubscriptions(me.id);
    return p;
  }

  /** Lifecycle events of a session the caller has joined. */
  async subscribeEvents(
    tokenHash: string | null,
    sessionId: string,
    backlogged?: () => boolean,
  ): Promise<Subscription<SessionEvent>> {
    const me = await this.core.requireMember(tokenHash, sessionId);
    return this.track(me, (onClose) => this.core.pubsub.subscribe<SessionEvent>(sessionTopic(sessionId), { backlogged, onClose }));
  }

  /** Progress frames of a session the caller has joined; preview frames conflate per turn for slow subscribers. */
  async subscribeProgress(
    tokenHash: string | null,
    sessionId: string,
    backlogged?: () => boolean,
  ): Promise<Subscription<TurnProgressFrame>> {
    const me = await this.core.requireMember(tokenHash, sessionId);
    return this.track(me, (onClose) =>
      this.core.pubsub.subscribe<TurnProgressFrame>(progressTopic(sessionId), {
        // Latest frame wins: an undelivered preview of a turn is replaced by a newer one; final frames are kept.
        conflationKey: (f) => (f.final ? null : `preview:${f.turnId}`),
        backlogged,
        onClose,
      }),
    );
  }

  /**
   * Make a subscription of a participant and keep it while it lives: the participant is online while they have
   * one, and leaving the session ends them all (a participant who left no longer reads the session).
   */
  private async track<T>(p: ParticipantRecord, make: (onClose: () => void) => Subscription<T>): Promise<Subscription<T>> {
    let release: (() => void) | null = null;
    let ended = false;
    const sub = make(() => {
      ended = true;
      this.live.get(p.id)?.delete(sub as Subscription<unknown>);
      release?.();
    });
    let set = this.live.get(p.id);
    if (!set) this.live.set(p.id, (set = new Set()));
    set.add(sub as Subscription<unknown>);
    const r = await this.connect(p);
    if (ended) r();
    else release = r;
    return sub;
  }

  /** End every subscription of a participant. */
  private endSubscriptions(participantId: string): void {
    const set = this.live.get(participantId);
    this.live.delete(participantId);
    for (const sub of set ?? []) void sub.return();
  }

  /** Count a live subscription of a participant; the first makes them online, the last one's end offline. */
  private async connect(p: ParticipantRecord): Promise<() => void> {
    const n = (this.connections.get(p.id) ?? 0) + 1;
    this.connections.set(p.id, n);
    if (n === 1) await this.setOnline(p, true);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.connections.get(p.id) ?? 1) - 1;
      if (left > 0) {
        this.connections.set(p.id, left);
        return;
      }
      this.connections.delete(p.id);
      this.setOnline(p, false).catch((err: unknown) => log.warn({ err }, 'could not mark participant offline'));
    };
  }

  private async setOnline(p: ParticipantRecord, online: boolean): Promise<void> {
    const updated = await this.core.writes.run(async () => {
      const cur = await this.core.db.participant.findUnique({ where: { id: p.id } });
      if (!cur || cur.online === online) return null;
      return this.core.db.participant.update({ where: { id: p.id }, data: { online } });
    });
    if (updated) {
      this.core.emit({ kind: online ? 'PARTICIPANT_ONLINE' : 'PARTICIPANT_OFFLINE', sessionId: p.sessionId, participant: updated });
    }
  }
}
