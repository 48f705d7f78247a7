/**
 * GET /metrics: Prometheus text with the engine's and the server's figures, scraped after real turns.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Collector, PROGRESS, createSession, eventually, startTestServer, submit, waitTurn, type Frame, type TestServer, parseMetrics } from './harness.js';

async function scrape(s: TestServer): Promise<Map<string, number>> {
  const res = await fetch(`${s.origin}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
  return parseMetrics(await res.text());
}

describe('metrics', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer();
  });
  afterAll(async () => {
    await s?.stop();
  });

  it('count turns by status, steps, batch sizes, latencies and delivered previews; report event-loop lag', async () => {
    const before = await scrape(s);
    expect(before.get('codraw_turns{status="SUCCEEDED"}')).toBe(0);
    expect(before.get('codraw_engine_queue_depth')).toBe(0);
    expect(before.has('codraw_nodejs_eventloop_lag_seconds')).toBe(true);

    const { sessionId, teller } = await createSession(s);
    const frames = new Collector<Frame>(s.ws(teller), PROGRESS, { sessionId }, (d) => d.turnProgress as Frame);
    // Subscribed once the server counts the teller online.
    await eventually(async () => (await s.ok<{ session: { me: { online: boolean } } }>(`query($s: ID!) { session(id: $s) { me { online } } }`, { s: sessionId }, teller)).session.me.online);
    const a = await submit(s, teller, sessionId, 'add a red cube', { steps: 3 });
    const b = await submit(s, teller, sessionId, 'add a blue sphere', { steps: 3 });
    await waitTurn(s, teller, a.id);
    await waitTurn(s, teller, b.id);
    await frames.until((fs) => fs.filter((f) => f.final).length === 2);

    const m = await scrape(s);
    expect(m.get('codraw_turns{status="SUCCEEDED"}')).toBe(2);
    expect(m.get('codraw_turns{status="QUEUED"}')).toBe(0);
    expect(m.get('codraw_engine_turns_ended_total{outcome="succeeded"}')).toBe(2);
    const model = s.batches[0]!.model!;
    expect(m.get(`codraw_engine_step_ms_count{model="${model}"}`)).toBe(6);
    expect(m.get(`codraw_engine_batch_samples_sum{model="${model}"}`)).toBe(6);
    expect(m.get('codraw_turn_latency_ms_count')).toBe(2);
    expect(m.get('codraw_turn_first_preview_ms_count')).toBe(2);
    // Every preview frame the subscriber got was measured on its way out.
    const previews = frames.items.filter((f) => !f.final).length;
    expect(previews).toBeGreaterThan(0);
    expect(m.get('codraw_preview_delivery_ms_count')).toBe(previews);
  });
});
