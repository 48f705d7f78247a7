/** What the server's engine runs and how busy it is (public; refreshed every few seconds and on turn events). */
import type { EngineStatusView, ServedModel } from '../api.js';

/** The columns of the models table: heading and how a model's value reads. */
const COLUMNS: [string, (m: ServedModel) => string][] = [
  ['key', (m) => m.key],
  ['name', (m) => m.name],
  ['datasets', (m) => m.datasets.join(', ')],
  ['loaded', (m) => (m.loaded ? 'yes' : 'no')],
  ['canvas size', (m) => `${m.canvasSize}`],
  ['queue length', (m) => `${m.queueLength}`],
  ['running', (m) => `${m.running}`],
  ['step ms', (m) => (m.stepMs === null ? '' : m.stepMs.toFixed(1))],
];

function ModelsTable({ models }: { models: ServedModel[] }) {
  if (!models.length) return <p>No models listed.</p>;
  return (
    <div class="table-scroll">
      <table class="models">
        <caption>Models served</caption>
        <thead>
          <tr>{COLUMNS.map(([h]) => <th scope="col" key={h}>{h}</th>)}</tr>
        </thead>
        <tbody>
          {models.map((m) => (
            <tr key={m.key}>{COLUMNS.map(([h, read]) => <td key={h}>{read(m)}</td>)}</tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function EngineStatusPanel({ status, error }: { status: EngineStatusView | null; error: string | null }) {
  return (
    <section class="panel engine" aria-labelledby="engine-title">
      <h2 id="engine-title">Engine</h2>
      {error && <p class="muted">{error}</p>}
      {!status && !error && <p class="muted">Loading…</p>}
      {status && (
        <>
          <dl class="facts" data-testid="engine-status">
            <dt>Queue</dt>
            <dd>
              {status.queueLength} turn{status.queueLength === 1 ? '' : 's'} {status.busy ? '(busy)' : '(idle)'}
            </dd>
            <dt>Model</dt>
            <dd>{status.model}</dd>
            <dt>Backend</dt>
            <dd>
              {status.backend} on {status.device}, {status.threads} thread{status.threads === 1 ? '' : 's'}
            </dd>
            <dt>Batching</dt>
            <dd>{status.batching ? `on, up to ${status.maxBatchSize} samples a step` : 'off'}</dd>
            <dt>Turn defaults</dt>
            <dd>
              {status.turnDefaults.steps} steps, guidance {status.turnDefaults.guidanceScale}, ICM {status.turnDefaults.icmGuidanceScale}
              {status.turnDefaults.candidates > 1 ? `, best of ${status.turnDefaults.candidates}` : ''}
            </dd>
          </dl>
          <ModelsTable models={status.models} />
        </>
      )}
    </section>
  );
}
