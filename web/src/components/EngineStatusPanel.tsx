/** What the server's engine runs and how busy it is (public; refreshed every few seconds and on turn events). */
import type { EngineStatusView, ServedModel } from '../api.js';

const cell = (v: ServedModel[string] | undefined): string =>
  Array.isArray(v) ? v.join(', ') : typeof v === 'boolean' ? (v ? 'yes' : 'no') : typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(1) : String(v ?? '');

function ModelsTable({ models }: { models: ServedModel[] }) {
  const columns = [...new Set(models.flatMap((m) => Object.keys(m)))];
  if (!models.length || !columns.length) return <p>No models listed.</p>;
  return (
    <div class="table-scroll">
      <table class="models">
        <caption>Models served</caption>
        <thead>
          <tr>{columns.map((c) => <th scope="col" key={c}>{c.replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase()}</th>)}</tr>
        </thead>
        <tbody>
          {models.map((m, i) => (
            <tr key={i}>{columns.map((c) => <td key={c}>{cell(m[c])}</td>)}</tr>
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
          {status.models && <ModelsTable models={status.models} />}
        </>
      )}
    </section>
  );
}
