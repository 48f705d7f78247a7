// The browser tests load the built client from the test server: build it when it is missing (npm run build does).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { WEB_CLIENT_DIR } from '../../src/server/webClient.js';

export default function setup(): void {
  if (fs.existsSync(path.join(WEB_CLIENT_DIR, 'index.html'))) return;
  execFileSync('npx', ['vite', 'build', '--config', 'web/vite.config.ts', '--logLevel', 'warn'], { stdio: 'inherit' });
}
