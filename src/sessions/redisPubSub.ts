/**
 * The pub/sub seam over Redis (scale-out mode): every API server and generation worker publishes to Redis and
 * every API server delivers what Redis sends it to its own subscribers. Publishing never short-cuts to local
 * subscribers, so all servers deliver one topic's items in the one order Redis gives them.
 *
 * Delivery to a subscriber (latest-frame-wins conflation, backpressure) is the in-process pub/sub's, fed from the
 * Redis subscriber connection. ioredis reconnects by itself and subscribes again; items published while Redis is
 * down wait in its offline queue (publishers) or are missed (subscribers): lifecycle state lives in PostgreSQL, and
 * clients catch up by querying it.
 */
import { Redis } from 'ioredis';
import { partLogger } from '../log/index.js';
import { InProcessPubSub, type PubSub, type SubscribeOptions, type Subscription } from './events.js';

const log = partLogger('sessions');
const PREFIX = 'codraw:topic:';
const RETAIN_PREFIX = 'codraw:retained:';

/** JSON that keeps Dates (events and frames carry them). */
function encode(payload: unknown): string {
  return JSON.stringify(payload, function (this: Record<string, unknown>, key, value: unknown) {
    const raw = this[key];
    return raw instanceof Date ? { $date: raw.toISOString() } : value;
  });
}

function decode(text: string): unknown {
  return JSON.parse(text, (_key, value: unknown) => {
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      const v = value as Record<string, unknown>;
      if (typeof v.$date === 'string' && Object.keys(v).length === 1) return new Date(v.$date);
    }
    return value;
  });
}

export class RedisPubSub implements PubSub {
  private readonly pub: Redis;
  private readonly sub: Redis;
  private readonly local = new InProcessPubSub();
  private closed = false;

  constructor(url: string) {
    this.pub = new Redis(url, { lazyConnect: false });
    this.sub = new Redis(url, { lazyConnect: false });
    for (const [name, c] of [['publisher', this.pub], ['subscriber', this.sub]] as const) {
      c.on('error', (err: Error) => log.warn({ err: err.message, connection: name }, 'redis pub/sub connection error'));
      c.on('ready', () => log.info({ connection: name }, 'redis pub/sub connected'));
    }
    this.sub.on('message', (channel: string, message: string) => {
      if (!channel.startsWith(PREFIX)) return;
      let payload: unknown;
      try {
        payload = decode(message);
      } catch (err) {
        log.warn({ err, channel }, 'undecodable pub/sub message dropped');
        return;
      }
      this.local.publish(channel.slice(PREFIX.length), payload);
    });
  }

  /** Resolves once both connections are up (rejects after `ms`). */
  async ready(ms = 10_000): Promise<void> {
    const up = (c: Redis): Promise<void> =>
      c.status === 'ready' ? Promise.resolve() : new Promise((resolve) => c.once('ready', () => resolve()));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([up(this.pub), up(this.sub)]),
      new Promise((_r, reject) => (timer = setTimeout(() => reject(new Error(`Redis did not answer within ${ms} ms`)), ms))),
    ]).finally(() => clearTimeout(timer));
  }

  publish<T>(topic: string, payload: T): void {
    if (this.closed) return;
    this.pub.publish(PREFIX + topic, encode(payload)).catch((err: unknown) => log.warn({ err, topic }, 'publish failed'));
  }

  subscribe<T>(topic: string, options: SubscribeOptions<T> = {}): Subscription<T> {
    const first = this.local.subscriberCount(topic) === 0;
    const sub = this.local.subscribe<T>(topic, {
      ...options,
      onClose: () => {
        options.onClose?.();
        if (!this.closed && this.local.subscriberCount(topic) === 0) {
          this.sub.unsubscribe(PREFIX + topic).catch((err: unknown) => log.warn({ err, topic }, 'unsubscribe failed'));
        }
      },
    });
    if (first) this.sub.subscribe(PREFIX + topic).catch((err: unknown) => log.warn({ err, topic }, 'subscribe failed'));
    return sub;
  }

  /**
   * Resolves once Redis has registered this server's subscription to a topic (a subscription made just before a
   * publish elsewhere would otherwise miss it).
   */
  async subscribed(topic: string): Promise<void> {
    await this.sub.subscribe(PREFIX + topic);
  }

  retain<T>(key: string, payload: T, ttlMs: number): void {
    if (this.closed) return;
    this.pub.set(RETAIN_PREFIX + key, encode(payload), 'PX', ttlMs).catch((err: unknown) => log.warn({ err, key }, 'retain failed'));
  }

  async recall<T>(key: string): Promise<T | null> {
    const v = await this.pub.get(RETAIN_PREFIX + key);
    return v === null ? null : (decode(v) as T);
  }

  forget(key: string): void {
    if (this.closed) return;
    this.pub.del(RETAIN_PREFIX + key).catch(() => undefined);
  }

  subscriberCount(topic: string): number {
    return this.local.subscriberCount(topic);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.local.close();
    this.pub.quit().catch(() => this.pub.disconnect());
    this.sub.quit().catch(() => this.sub.disconnect());
  }
}
