/**
 * The pub/sub seam between the sessions service and the subscription resolvers. One interface; the in-process
 * implementation below is the only one today, and a Redis-backed one can slot in later without touching resolvers.
 *
 * Slow subscribers: items that carry a conflation key (preview frames) replace an undelivered older item with the
 * same key (latest frame wins), and delivery waits while the subscriber reports itself backlogged (its socket's
 * unsent bytes are above a high-water mark). Items without a key (lifecycle events, final frames) are never dropped.
 */

export interface SubscribeOptions<T> {
  /** Items with the same non-null key replace each other while undelivered (latest wins). */
  conflationKey?: (item: T) => string | null;
  /** While this returns true, delivery is held back (and keyed items keep conflating). */
  backlogged?: () => boolean;
  /** Called once when the subscription ends (consumer returned or the pub/sub closed). */
  onClose?: () => void;
}

/** A subscription: an async iterator of the items published on its topic after it was made. */
export type Subscription<T> = AsyncIterableIterator<T> & { return(): Promise<IteratorResult<T>> };

export interface PubSub {
  publish<T>(topic: string, payload: T): void;
  subscribe<T>(topic: string, options?: SubscribeOptions<T>): Subscription<T>;
  /** Number of live subscriptions on a topic. */
  subscriberCount(topic: string): number;
  /**
   * Keep the latest `payload` under `key` for `ttlMs`, readable by every server (a running turn's latest preview,
   * for a client that connects or reconnects mid-turn and catches up).
   */
  retain<T>(key: string, payload: T, ttlMs: number): void;
  /** What `retain` last kept under `key`, or null (never kept, expired or forgotten). */
  recall<T>(key: string): Promise<T | null>;
  forget(key: string): void;
  /** End every subscription. */
  close(): void;
}

const BACKLOG_POLL_MS = 5;

class Subscriber<T> implements AsyncIterableIterator<T> {
  private readonly queue: T[] = [];
  private waiting: ((r: IteratorResult<T>) => void) | null = null;
  private closed = false;
  /** Items dropped by conflation (for tests and logs). */
  dropped = 0;

  constructor(
    private readonly opts: SubscribeOptions<T>,
    private readonly detach: () => void,
  ) {}

  push(item: T): void {
    if (this.closed) return;
    if (this.waiting && this.queue.length === 0 && !this.isBacklogged()) {
      const w = this.waiting;
      this.waiting = null;
      w({ value: item, done: false });
      return;
    }
    // Latest frame wins only for a backlogged subscriber; a merely busy one (awaiting its last send) gets every item.
    const key = this.isBacklogged() ? (this.opts.conflationKey?.(item) ?? null) : null;
    if (key !== null) {
      const i = this.queue.findIndex((q) => this.opts.conflationKey!(q) === key);
      if (i >= 0) {
        this.queue.splice(i, 1);
        this.dropped++;
      }
    }
    this.queue.push(item);
    if (this.waiting) this.pumpWhenWritable();
  }

  private isBacklogged(): boolean {
    return this.opts.backlogged?.() ?? false;
  }

  private pumping = false;
  /** Deliver the head of the queue to the waiting consumer once the subscriber is no longer backlogged. */
  private pumpWhenWritable(): void {
    if (this.pumping) return;
    this.pumping = true;
    const tick = (): void => {
      if (this.closed || !this.waiting) {
        this.pumping = false;
        return;
      }
      if (this.isBacklogged()) {
        setTimeout(tick, BACKLOG_POLL_MS);
        return;
      }
      this.pumping = false;
      const item = this.queue.shift();
      if (item !== undefined) {
        const w = this.waiting;
        this.waiting = null;
        w({ value: item, done: false });
      }
    };
    tick();
  }

  next(): Promise<IteratorResult<T>> {
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this.waiting = resolve;
      if (this.queue.length > 0) this.pumpWhenWritable();
    });
  }

  return(): Promise<IteratorResult<T>> {
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  end(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.detach();
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = null;
      w({ value: undefined, done: true });
    }
    this.opts.onClose?.();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** Pub/sub within this process. */
export class InProcessPubSub implements PubSub {
  private readonly topics = new Map<string, Set<Subscriber<unknown>>>();
  private readonly retained = new Map<string, { payload: unknown; expires: number }>();

  retain<T>(key: string, payload: T, ttlMs: number): void {
    this.retained.set(key, { payload, expires: Date.now() + ttlMs });
  }

  recall<T>(key: string): Promise<T | null> {
    const r = this.retained.get(key);
    if (r && r.expires < Date.now()) this.retained.delete(key);
    return Promise.resolve(r && r.expires >= Date.now() ? (r.payload as T) : null);
  }

  forget(key: string): void {
    this.retained.delete(key);
  }

  publish<T>(topic: string, payload: T): void {
    const subs = this.topics.get(topic);
    if (!subs) return;
    for (const s of [...subs]) (s as Subscriber<T>).push(payload);
  }

  subscribe<T>(topic: string, options: SubscribeOptions<T> = {}): Subscription<T> {
    let subs = this.topics.get(topic);
    if (!subs) this.topics.set(topic, (subs = new Set()));
    const set = subs;
    const sub: Subscriber<T> = new Subscriber<T>(options, () => {
      set.delete(sub as Subscriber<unknown>);
      if (set.size === 0) this.topics.delete(topic);
    });
    set.add(sub as Subscriber<unknown>);
    return sub;
  }

  subscriberCount(topic: string): number {
    return this.topics.get(topic)?.size ?? 0;
  }

  close(): void {
    for (const subs of [...this.topics.values()]) for (const s of [...subs]) s.end();
    this.topics.clear();
    this.retained.clear();
  }
}
