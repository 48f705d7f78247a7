import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';

function runCli(args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/train/cli.ts', ...args], { encoding: 'utf8', env: { ...process.env, LOG_LEVEL: 'silent' } });
  return { status: r.status, stderr: r.stderr };
}

describe('train CLI option checks', () => {
  it('refuses a weight-average decay outside [0, 1) and on the autoencoder stage, before any data is rendered', () => {
    const bad = runCli(['--dataset', 'iclevr', '--stage', '2', '--out', '/tmp/never-written', '--ema-decay', '1']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('--ema-decay must be in [0, 1)');
    const ae = runCli(['--dataset', 'iclevr', '--stage', 'ae', '--out', '/tmp/never-written', '--ema-decay', '0.999']);
    expect(ae.status).toBe(1);
    expect(ae.stderr).toContain('--ema-decay applies to the CDD-ICM stages');
  });
});
