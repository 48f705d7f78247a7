/**
 * The web client (`web/`, built by `npm run build:web` into `dist/web`) served at `/`: hashed assets cached for a
 * year, `index.html` revalidated every time, and the app's own routes (`/`, `/s/<id>`) answered with `index.html`.
 * When the client is not built, `/` says how to build it instead of a bare 404.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type Express, type Request, type Response } from 'express';

/** The repository root: the nearest folder above this file with a package.json (works from src/ and dist/src/). */
function repositoryRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
  return dir;
}

/** Where `npm run build:web` puts the client. */
export const WEB_CLIENT_DIR = path.join(repositoryRoot(), 'dist', 'web');

/** Paths the client routes itself (join links land on `/?session=...`). */
const APP_ROUTES = ['/', '/s/:sessionId'];

const NOT_BUILT = `<!doctype html><html lang="en"><meta charset="utf-8"><title>Web client not built</title>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; line-height: 1.5">
<h1>The web client is not built</h1>
<p>The GraphQL API is running at <a href="/graphql">/graphql</a>, but the page that talks to it has not been built yet.
Run <code>npm run build</code> (or just <code>npm run build:web</code>) in the repository and reload.</p></body></html>`;

/** Serve the built client from `dir` on `app` (its routes go before nothing else: API paths are left alone). */
export function serveWebClient(app: Express, dir: string = WEB_CLIENT_DIR): void {
  const index = path.join(dir, 'index.html');
  // Vite names every asset by its content hash: a changed file is a new URL.
  app.use(
    '/assets',
    express.static(path.join(dir, 'assets'), {
      immutable: true,
      maxAge: '365d',
      index: false,
      fallthrough: false,
    }),
  );
  app.get(APP_ROUTES, (_req: Request, res: Response) => {
    // Checked per request so that building the client while the server runs needs no restart.
    if (!fs.existsSync(index)) {
      res.status(503).type('html').set('Cache-Control', 'no-store').send(NOT_BUILT);
      return;
    }
    res.set('Cache-Control', 'no-cache').sendFile(index);
  });
}
