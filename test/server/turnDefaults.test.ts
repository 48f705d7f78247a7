/**
 * A turn that sets no generation settings gets the server's configured defaults, else the checkpoint's recommended
 * ones (config.json "sampling", written by `npm run train -- --export ... --default-guidance`), else the paper's.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createSession, startTestServer, submit, tempDir, tinyCheckpoint, waitTurn, type TestServer } from './harness.js';

const SUBMIT_SETTINGS = /* GraphQL */ `
  mutation($input: SubmitTurnInput!) { submitTurn(input: $input) { settings { steps guidanceScale icmGuidanceScale candidates } } }`;

interface Settings {
  steps: number;
  guidanceScale: number;
  icmGuidanceScale: number;
  candidates: number;
}

async function checkpointRecommending(sampling: Record<string, number>): Promise<string> {
  const dir = tempDir('codraw-ckpt-rec-');
  const src = await tinyCheckpoint();
  for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(dir, f));
  const file = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { config: Record<string, unknown> };
  file.config.sampling = sampling;
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(file));
  return dir;
}

async function settingsOfATurn(s: TestServer, extra: Record<string, unknown> = {}): Promise<Settings> {
  const { sessionId, teller } = await createSession(s);
  const d = await s.ok<{ submitTurn: { settings: Settings } }>(
    SUBMIT_SETTINGS,
    { input: { sessionId, instruction: 'add a red cube in the middle', ...extra } },
    teller,
  );
  return d.submitTurn.settings;
}

describe('turn defaults', () => {
  it('the checkpoint\'s recommendation applies where the configuration sets nothing; the configuration and the turn win', async () => {
    const modelPath = await checkpointRecommending({ steps: 3, guidanceScale: 4.5, icmGuidanceScale: 0.5, candidates: 2 });
    // The harness configures no guidance scales: the model's apply, and its steps give way to none.
    const s = await startTestServer({ modelPath, defaultSteps: undefined });
    try {
      expect(await settingsOfATurn(s)).toEqual({ steps: 3, guidanceScale: 4.5, icmGuidanceScale: 0.5, candidates: 2 });
      const status = await s.ok<{ engineStatus: { turnDefaults: unknown } }>(`{ engineStatus { turnDefaults { steps guidanceScale icmGuidanceScale candidates } } }`);
      expect(status.engineStatus.turnDefaults).toEqual({ steps: 3, guidanceScale: 4.5, icmGuidanceScale: 0.5, candidates: 2 });
      expect(await settingsOfATurn(s, { guidanceScale: 1, steps: 2, candidates: 3 })).toEqual({ steps: 2, guidanceScale: 1, icmGuidanceScale: 0.5, candidates: 3 });
    } finally {
      await s.stop();
    }
    const configured = await startTestServer({ modelPath, defaultSteps: 2, defaultGuidanceScale: 2.5, defaultCandidates: 1 });
    try {
      expect(await settingsOfATurn(configured)).toEqual({ steps: 2, guidanceScale: 2.5, icmGuidanceScale: 0.5, candidates: 1 });
    } finally {
      await configured.stop();
    }
  });

  it('a best-of-n turn denoises its candidates together and succeeds', async () => {
    const s = await startTestServer();
    try {
      const { sessionId, teller } = await createSession(s);
      const t = await submit(s, teller, sessionId, 'add a red cube in the middle', { candidates: 3 });
      expect((await waitTurn(s, teller, t.id)).status).toBe('SUCCEEDED');
      const mine = s.batches.filter((b) => b.turnIds.includes(t.id));
      expect(mine.map((b) => b.samples)).toEqual([3, 3, 3, 3]);
    } finally {
      await s.stop();
    }
  });

  it('a checkpoint without a recommendation samples at the paper\'s guidance scales', async () => {
    const s = await startTestServer();
    try {
      expect(await settingsOfATurn(s)).toEqual({ steps: 4, guidanceScale: 3, icmGuidanceScale: 2, candidates: 1 });
    } finally {
      await s.stop();
    }
  });

  it('a checkpoint with a bad recommendation does not load', async () => {
    const modelPath = await checkpointRecommending({ guidanceScale: -2 });
    await expect(startTestServer({ modelPath })).rejects.toThrow(/sampling.guidanceScale must be a number >= 0/);
    const zero = await checkpointRecommending({ candidates: 0 });
    await expect(startTestServer({ modelPath: zero })).rejects.toThrow(/sampling.candidates must be a positive integer/);
  });
});
