// The browser tests load the built client from the test server. Build it first (about a second), so that they
// never test a stale dist/web.
import { execFileSync } from 'node:child_process';

export default function setup(): void {
  execFileSync('npx', ['vite', 'build', '--config', 'web/vite.config.ts', '--logLevel', 'warn'], { stdio: 'inherit' });
}
