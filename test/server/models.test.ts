/**
 * Multi-model serving through the real server: a session's dataset picks its model, models load on their first
 * turn in the engine thread, engineStatus lists them, and a dataset the server does not serve is refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePng } from '../../src/data/index.js';
import { CREATE, startTestServer, submit, tinyCheckpoint, waitTurn, type TestServer } from './harness.js';

const STATUS = /* GraphQL */ `{ engineStatus { model models { key name datasets loaded canvasSize queueLength running turnDefaults { steps candidates } } } }`;

interface ServedModelView {
  key: string;
  name: string;
  datasets: string[];
  loaded: boolean;
  canvasSize: number;
  turnDefaults: { steps: number; candidates: number };
}

async function models(s: TestServer): Promise<ServedModelView[]> {
  return (await s.ok<{ engineStatus: { models: ServedModelView[] } }>(STATUS)).engineStatus.models;
}

async function createIn(s: TestServer, dataset: string): Promise<{ sessionId: string; teller: string }> {
  const d = await s.ok<{ createSession: { token: string; session: { id: string; model: string; dataset: string } } }>(
    `mutation($input: CreateSessionInput!) { createSession(input: $input) { token session { id model dataset } } }`,
    { input: { title: dataset, name: 'Tess', dataset } },
  );
  expect(d.createSession.session.dataset).toBe(dataset);
  return { sessionId: d.createSession.session.id, teller: d.createSession.token };
}

describe('a default server', () => {
  let s: TestServer;
  beforeAll(async () => {
    // No MODEL_PATH: both shipped models, one per dataset.
    s = await startTestServer({ modelPath: undefined });
  });
  afterAll(async () => {
    await s?.stop();
  });

  it('serves both shipped models, loads only the one a turn needs, and renders a CoDraw session with the CoDraw model', async () => {
    const before = await models(s);
    expect(before.map((m) => [m.key, m.datasets, m.loaded, m.canvasSize])).toEqual([
      ['models/iclevr-default', ['iclevr'], false, 64],
      ['models/codraw', ['codraw'], false, 64],
    ]);
    // Each model's own recommended settings (the i-CLEVR model's best of 4; the test server's 4 steps).
    expect(before[0]!.turnDefaults).toEqual({ steps: 4, candidates: 4 });

    const { sessionId, teller } = await createIn(s, 'codraw');
    const t = await submit(s, teller, sessionId, 'mike is standing on the grass on the left. the sun is at the top right', { steps: 10, candidates: 1 });
    const done = await waitTurn(s, teller, t.id);
    expect(done.status).toBe('SUCCEEDED');
    const steps = s.batches.filter((b) => b.turnIds.includes(t.id));
    expect(steps).toHaveLength(10);
    for (const b of steps) expect(b.model).toBe('models/codraw');

    const after = await models(s);
    expect(after.map((m) => [m.key, m.loaded])).toEqual([['models/iclevr-default', false], ['models/codraw', true]]);

    // A CoDraw scene: sky over grass (the i-CLEVR model draws a grey floor). Mean colour of the top and bottom
    // quarters of the result.
    const res = await fetch(`${s.origin}${done.resultImage!.url}`, { headers: { authorization: `Bearer ${teller}` } });
    const img = await decodePng(Buffer.from(await res.arrayBuffer()));
    const mean = (y0: number, y1: number): [number, number, number] => {
      const sum = [0, 0, 0];
      for (let y = y0; y < y1; y++) for (let x = 0; x < img.width; x++) for (let c = 0; c < 3; c++) sum[c]! += img.data[(y * img.width + x) * 3 + c]!;
      const n = (y1 - y0) * img.width;
      return [sum[0]! / n, sum[1]! / n, sum[2]! / n];
    };
    const [sr, , sb] = mean(0, img.height / 4);
    const [gr, gg, gb] = mean((3 * img.height) / 4, img.height);
    expect(sb).toBeGreaterThan(sr + 20); // blue sky
    expect(gg).toBeGreaterThan(Math.max(gr, gb) + 20); // green grass
  });
});

describe('MODELS', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ models: { iclevr: await tinyCheckpoint() } });
  });
  afterAll(async () => {
    await s?.stop();
  });

  it('serves only the datasets it names: another dataset cannot have sessions, and says which are served', async () => {
    expect((await models(s)).map((m) => m.datasets)).toEqual([['iclevr']]);
    const r = await s.gql(CREATE, { input: { title: 'x', name: 'Tess', dataset: 'codraw' } });
    expect(r.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(r.errors?.[0]?.message).toMatch(/this server serves iclevr/);
    const ok = await createIn(s, 'iclevr');
    expect(ok.sessionId).toBeTruthy();
  });
});
