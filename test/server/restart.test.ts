/**
 * Drain and restart: in-flight turns are left QUEUED, never lost, and the next start picks them up in order.
 * Once in-process (drain), once with the real `main.ts` process receiving SIGTERM.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import {
  CREATE,
  eventually,
  startTestServer,
  submit,
  tempDir,
  tinyCheckpoint,
  turn,
  waitTurn,
  createSession,
} from './harness.js';

function statuses(dataDir: string): Record<string, string> {
  const db = new Database(path.join(dataDir, 'codraw.db'), { readonly: true });
  try {
    const rows = db.prepare('SELECT id, status FROM Turn').all() as Array<{ id: string; status: string }>;
    return Object.fromEntries(rows.map((r) => [r.id, r.status]));
  } finally {
    db.close();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

describe('restart', () => {
  it('drain leaves in-flight turns QUEUED; the next start resumes them in order', async () => {
    const dataDir = tempDir();
    const s1 = await startTestServer({}, dataDir);
    const { sessionId, teller } = await createSession(s1);
    const t1 = await submit(s1, teller, sessionId, 'add a red cube in the middle', { steps: 24 });
    const t2 = await submit(s1, teller, sessionId, 'add a blue sphere left of the red cube', { steps: 3 });
    const t3 = await submit(s1, teller, sessionId, 'put a green cylinder behind it', { steps: 3 });
    await waitTurn(s1, teller, t1.id, ['RUNNING']);
    await s1.stop();
    expect(statuses(dataDir)).toEqual({ [t1.id]: 'QUEUED', [t2.id]: 'QUEUED', [t3.id]: 'QUEUED' });

    const s2 = await startTestServer({}, dataDir);
    try {
      // The token survived the restart, and the three turns finish in order, each on the previous result.
      const d3 = await waitTurn(s2, teller, t3.id);
      const d1 = await turn(s2, teller, t1.id);
      const d2 = await turn(s2, teller, t2.id);
      expect([d1.status, d2.status, d3.status]).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
      expect(d2.referenceImage?.id).toBe(d1.resultImage?.id);
      expect(d3.referenceImage?.id).toBe(d2.resultImage?.id);
      const order = s2.batches.flatMap((b) => b.turnIds).filter((id, i, all) => all.indexOf(id) === i);
      expect(order).toEqual([t1.id, t2.id, t3.id]);
    } finally {
      await s2.stop();
    }
  });

  // The real program (src/server/main.ts) in its own process, killed with a signal while a turn is running.
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    const what =
      signal === 'SIGTERM'
        ? 'SIGTERM drains the real server process (exit 0, the running turn back to QUEUED); a restart finishes the turn'
        : 'a crash (SIGKILL) loses nothing: the turn left RUNNING is picked up again at the next start';
    it(what, async () => {
      const dataDir = tempDir();
      const port = await freePort();
      const root = path.resolve(import.meta.dirname, '../..');
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/server/main.ts', '--port', String(port)], {
        cwd: root,
        env: {
          ...process.env,
          VITEST: '',
          LOG_LEVEL: 'warn',
          HOST: '127.0.0.1',
          DATA_DIR: dataDir,
          MODEL_PATH: await tinyCheckpoint(),
          TENSOR_BACKEND: process.env.TENSOR_BACKEND ?? 'auto',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
        child.on('exit', (code, sig) => resolve({ code, signal: sig })),
      );
      const url = `http://127.0.0.1:${port}/graphql`;
      // test-only: response shapes are checked by the assertions below
      const post = async (query: string, variables: Record<string, unknown>, token?: string): Promise<Record<string, any>> => {
        const r = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
          body: JSON.stringify({ query, variables }),
        });
        return (await r.json()) as Record<string, any>;
      };
      let passed = false;
      try {
        await eventually(() => fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok).catch(() => false), 60_000, 'server up');
        const c = await post(CREATE, { input: { title: signal, name: 'T' } });
        const token = c.data.createSession.token as string;
        const sessionId = c.data.createSession.session.id as string;
        const sub = await post(`mutation($i: SubmitTurnInput!) { submitTurn(input: $i) { id } }`, { i: { sessionId, instruction: 'add a red cube', steps: 60 } }, token);
        const turnId = sub.data.submitTurn.id as string;
        await eventually(async () => (await post(`query($id: ID!) { turn(id: $id) { status } }`, { id: turnId }, token)).data.turn.status === 'RUNNING', 60_000, 'running');
        child.kill(signal);
        // Work sent right after SIGTERM is refused (INVALID_STATE), or finds the port already closed; never accepted.
        const late =
          signal === 'SIGTERM'
            ? await new Promise((r) => setTimeout(r, 30)).then(() =>
                post(`mutation($i: SubmitTurnInput!) { submitTurn(input: $i) { id } }`, { i: { sessionId, instruction: 'add a blue sphere', steps: 2 } }, token).catch(() => null),
              )
            : null;
        if (late) expect(late.errors?.[0]?.extensions?.code).toBe('INVALID_STATE');
        const exit = await exited;
        if (signal === 'SIGTERM') {
          expect(exit.code).toBe(0);
          expect(statuses(dataDir)).toEqual({ [turnId]: 'QUEUED' });
        } else {
          expect(exit.signal).toBe('SIGKILL');
          expect(statuses(dataDir)[turnId]).toBe('RUNNING');
        }

        const s2 = await startTestServer({}, dataDir);
        try {
          const done = await waitTurn(s2, token, turnId, undefined, 100_000);
          expect(done.status).toBe('SUCCEEDED');
        } finally {
          await s2.stop();
        }
        passed = true;
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        if (!passed && output.trim()) console.log(output.slice(-2000));
      }
    });
  }
});
