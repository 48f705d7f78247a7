/**
 * The web client's static route (src/server/webClient.ts) on a bare express app: index.html for the client's own
 * routes, immutable hashed assets, API paths left alone, and a clear page when the client is not built.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveWebClient } from '../../src/server/webClient.js';
import { tempDir } from './harness.js';

async function serve(dir: string): Promise<{ origin: string; close(): Promise<void> }> {
  const app = express();
  serveWebClient(app, dir);
  app.get('/graphql', (_req, res) => {
    res.json({ api: true });
  });
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { origin: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe('the web client route', () => {
  let built: { origin: string; close(): Promise<void> };
  let missing: { origin: string; close(): Promise<void> };
  beforeAll(async () => {
    const dir = tempDir('codraw-web-');
    fs.mkdirSync(path.join(dir, 'assets'));
    fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>client</title>');
    fs.writeFileSync(path.join(dir, 'assets', 'index-abc123.js'), 'console.log(1)');
    built = await serve(dir);
    missing = await serve(path.join(dir, 'nothing-here'));
  });
  afterAll(async () => {
    await built?.close();
    await missing?.close();
  });

  it('answers / and /s/<id> (with a join query) with index.html, revalidated every time', async () => {
    for (const p of ['/', '/?session=abc&role=DRAWER', '/s/abc-123']) {
      const res = await fetch(`${built.origin}${p}`);
      expect(res.status, p).toBe(200);
      expect(res.headers.get('content-type')).toContain('text/html');
      expect(res.headers.get('cache-control')).toBe('no-cache');
      expect(await res.text()).toContain('<title>client</title>');
    }
  });

  it('serves hashed assets as immutable and 404s unknown ones instead of falling back to the page', async () => {
    const res = await fetch(`${built.origin}/assets/index-abc123.js`);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toContain('immutable');
    expect(res.headers.get('cache-control')).toContain('max-age=31536000');
    expect((await fetch(`${built.origin}/assets/gone-000.js`)).status).toBe(404);
    expect((await fetch(`${built.origin}/s/abc/deeper`)).status).toBe(404);
  });

  it('leaves the API paths to the API', async () => {
    const res = await fetch(`${built.origin}/graphql`);
    expect(await res.json()).toEqual({ api: true });
  });

  it('says how to build the client when it is not built', async () => {
    const res = await fetch(`${missing.origin}/`);
    expect(res.status).toBe(503);
    expect(await res.text()).toContain('npm run build');
  });
});
