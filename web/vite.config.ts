// The web client: built into dist/web, which the server serves at / (src/server/webClient.ts).
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root,
  base: '/',
  publicDir: false,
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    // Hashed file names under assets/: the server gives them an immutable cache header.
    assetsDir: 'assets',
    sourcemap: true,
  },
  server: {
    // `npx vite web` during development: the API runs on the usual port.
    proxy: { '/graphql': { target: 'http://127.0.0.1:4000', ws: true }, '/images': 'http://127.0.0.1:4000' },
  },
});
