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

  it('refuses a share of own canvases outside [0, 1], and a rollout without --count or with a missing model', () => {
    const rate = runCli(['--dataset', 'iclevr', '--stage', '2', '--out', '/tmp/never-written', '--self-references', 'x.safetensors', '--self-reference-rate', '1.5']);
    expect(rate.status).toBe(1);
    expect(rate.stderr).toContain('--self-reference-rate must be in [0, 1]');
    const alone = runCli(['--dataset', 'iclevr', '--stage', '2', '--out', '/tmp/never-written', '--self-reference-target', 'composite']);
    expect(alone.status).toBe(1);
    expect(alone.stderr).toContain('need --self-references <rollout file>');
    const target = runCli(['--dataset', 'iclevr', '--stage', '2', '--out', '/tmp/never-written', '--self-references', 'x.safetensors', '--self-reference-target', 'other']);
    expect(target.status).toBe(1);
    expect(target.stderr).toContain('--self-reference-target must be composite or ground-truth');
    const count = runCli(['--rollouts', '/tmp/never-written.safetensors', '--init', 'models/iclevr-default', '--dataset', 'iclevr']);
    expect(count.status).toBe(1);
    expect(count.stderr).toContain('--count E (episodes to roll out, >= 1) is required');
    const missing = runCli(['--rollouts', '/tmp/never-written.safetensors', '--init', '/nonexistent-model', '--dataset', 'iclevr', '--count', '2', '--train-episodes', '4']);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/nonexistent-model/);
  });

  it('refuses progressive-distillation options on other stages, bad step counts, and a distillation without a teacher', () => {
    const other = runCli(['--dataset', 'iclevr', '--stage', '2', '--out', '/tmp/never-written', '--student-steps', '4']);
    expect(other.status).toBe(1);
    expect(other.stderr).toContain('--student-steps applies to --stage progressive');
    const k = runCli(['--dataset', 'iclevr', '--stage', 'progressive', '--init', 'models/iclevr-default', '--out', '/tmp/never-written', '--teacher-substeps', '1']);
    expect(k.status).toBe(1);
    expect(k.stderr).toContain('--teacher-substeps wants an integer >= 2, got 1');
    const n = runCli(['--dataset', 'iclevr', '--stage', 'progressive', '--init', 'models/iclevr-default', '--out', '/tmp/never-written', '--student-steps', '2.5']);
    expect(n.status).toBe(1);
    expect(n.stderr).toContain('--student-steps wants an integer >= 1, got 2.5');
    const teacherless = runCli(['--dataset', 'iclevr', '--stage', 'progressive', '--out', '/tmp/never-written']);
    expect(teacherless.status).toBe(1);
    expect(teacherless.stderr).toContain('--stage progressive distils a trained model: pass it as --init <model folder>');
  });

  it("renders canvases at the model's own size: refuses an --image-size the preset or --init does not work at", () => {
    const preset = runCli(['--dataset', 'codraw', '--config', 'small-128', '--stage', '2', '--out', '/tmp/never-written', '--image-size', '64']);
    expect(preset.status).toBe(1);
    expect(preset.stderr).toContain('--image-size 64: preset small-128 works at 128x128');
    const init = runCli(['--dataset', 'iclevr', '--init', 'models/iclevr-default', '--stage', '2', '--out', '/tmp/never-written', '--image-size', '128']);
    expect(init.status).toBe(1);
    expect(init.stderr).toContain('--image-size 128: --init models/iclevr-default works at 64x64 (128x128: --config small-128)');
    const missing = runCli(['--dataset', 'iclevr', '--init', '/nonexistent-model', '--stage', '2', '--out', '/tmp/never-written']);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('--init /nonexistent-model: no readable config.json');
  });

  it('refuses one-axis hard negatives without --icm-hard-negatives', () => {
    const r = runCli(['--dataset', 'iclevr', '--stage', '3', '--out', '/tmp/never-written', '--icm-hard-negative-axes']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('--icm-hard-negative-axes needs --icm-hard-negatives');
  });

  it('refuses colour hard negatives on CoDraw', () => {
    const r = runCli(['--dataset', 'codraw', '--stage', '3', '--out', '/tmp/never-written', '--icm-hard-negative-colors']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('--icm-hard-negative-colors needs i-CLEVR episodes');
  });
});
