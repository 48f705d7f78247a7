/** `/`: start a session, or join one from a link (`/?session=<id>&role=<ROLE>[&invite=<code>]`). */
import { useMemo, useState } from 'preact/hooks';
import { Api, ROLES, type Role, type ServedModel } from '../api.js';
import { joinLink, lastName, loadIdentity, parseJoinLink, saveIdentity, sessionPath, type JoinRequest } from '../identity.js';
import type { Navigate } from '../main.js';
import { EngineStatusPanel } from './EngineStatusPanel.js';
import { Notices, useNotices } from './Notices.js';
import { useEngineStatus } from './useEngineStatus.js';

const ROLE_HELP: Record<Role, string> = {
  TELLER: 'describes what to draw and submits turns',
  DRAWER: 'asks back in the chat; the replies go into the next turn',
  OBSERVER: 'watches',
};

/** Datasets a session can draw in: what the server lists per model where it does, else the two it knows. */
/** The datasets a new session may use: those of the models served (both shipped ones until the status loads). */
function datasetsFrom(models: ServedModel[] | undefined): string[] {
  const listed = (models ?? []).flatMap((m) => m.datasets);
  return listed.length ? [...new Set(listed)] : ['iclevr', 'codraw'];
}

function CreateForm({ api, navigate, datasets, report }: { api: Api; navigate: Navigate; datasets: string[]; report(e: unknown, doing: string): void }) {
  const [title, setTitle] = useState('Blocks');
  const [name, setName] = useState(lastName());
  const [dataset, setDataset] = useState(datasets[0] ?? 'iclevr');
  const [allowDrawerTurns, setAllowDrawerTurns] = useState(false);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    try {
      const r = await api.createSession({ title: title.trim(), name: name.trim(), dataset, allowDrawerTurns });
      saveIdentity({ sessionId: r.session.id, token: r.token, participantId: r.participant.id, name: r.participant.name, role: r.participant.role });
      navigate(sessionPath(r.session.id));
    } catch (err) {
      report(err, 'creating the session');
      setBusy(false);
    }
  };
  return (
    <form class="panel form" onSubmit={submit} aria-labelledby="create-title">
      <h2 id="create-title">Start a session</h2>
      <label>
        Title
        <input name="title" value={title} onInput={(e) => setTitle(e.currentTarget.value)} required />
      </label>
      <label>
        Your name
        <input name="name" value={name} onInput={(e) => setName(e.currentTarget.value)} required autoComplete="nickname" />
      </label>
      <label>
        Dataset
        <select name="dataset" value={dataset} onChange={(e) => setDataset(e.currentTarget.value)}>
          {(datasets.includes(dataset) ? datasets : [dataset, ...datasets]).map((d) => (
            <option value={d} key={d}>
              {d === 'iclevr' ? 'i-CLEVR (cubes, spheres, cylinders)' : d === 'codraw' ? 'CoDraw (park clip-art)' : d}
            </option>
          ))}
        </select>
      </label>
      <label class="check">
        <input type="checkbox" checked={allowDrawerTurns} onChange={(e) => setAllowDrawerTurns(e.currentTarget.checked)} />
        Drawers may submit turns too
      </label>
      <p class="muted">
        You join as its teller and get links to invite drawers and observers. The engine panel shows which models the
        server draws with.
      </p>
      <button type="submit" disabled={busy || !title.trim() || !name.trim()}>
        {busy ? 'Creating…' : 'Create session'}
      </button>
    </form>
  );
}

function JoinForm({ join, navigate, report }: { join: JoinRequest; navigate: Navigate; report(e: unknown, doing: string): void }) {
  const existing = loadIdentity(join.sessionId);
  const [name, setName] = useState(lastName());
  const [role, setRole] = useState<Role>(join.role ?? 'DRAWER');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    try {
      // A fresh token per join: each browser is one participant per session.
      const r = await new Api(null).joinSession({ sessionId: join.sessionId, name: name.trim(), role, invite: join.invite });
      saveIdentity({ sessionId: r.session.id, token: r.token, participantId: r.participant.id, name: r.participant.name, role: r.participant.role });
      navigate(sessionPath(r.session.id), { replace: true });
    } catch (err) {
      report(err, 'joining the session');
      setBusy(false);
    }
  };
  return (
    <form class="panel form" onSubmit={submit} aria-labelledby="join-title">
      <h2 id="join-title">Join a session</h2>
      {existing && (
        <p>
          This browser is already in it as <strong>{existing.name}</strong> ({existing.role.toLowerCase()}).{' '}
          <a href={sessionPath(join.sessionId)} onClick={(e) => (e.preventDefault(), navigate(sessionPath(join.sessionId)))}>
            Continue as {existing.name}
          </a>
        </p>
      )}
      <label>
        Your name
        <input name="name" value={name} onInput={(e) => setName(e.currentTarget.value)} required autoFocus autoComplete="nickname" />
      </label>
      <fieldset>
        <legend>Role</legend>
        {ROLES.map((r) => (
          <label class="check" key={r}>
            <input type="radio" name="role" value={r} checked={role === r} onChange={() => setRole(r)} />
            <span>
              <strong>{r.toLowerCase()}</strong>: {ROLE_HELP[r]}
            </span>
          </label>
        ))}
      </fieldset>
      <button type="submit" disabled={busy || !name.trim()}>
        {busy ? 'Joining…' : `Join as ${role.toLowerCase()}`}
      </button>
    </form>
  );
}

function PasteLink({ navigate }: { navigate: Navigate }) {
  const [value, setValue] = useState('');
  const go = (e: Event) => {
    e.preventDefault();
    const v = value.trim();
    let req: JoinRequest | null = null;
    try {
      req = parseJoinLink(new URL(v, window.location.origin).search);
    } catch {
      req = null;
    }
    req ??= v ? { sessionId: v, role: null, invite: null } : null;
    if (req) navigate(joinLink('', req.sessionId, req.role ?? 'DRAWER', req.invite));
  };
  return (
    <form class="panel form" onSubmit={go} aria-labelledby="paste-title">
      <h2 id="paste-title">Have a link?</h2>
      <label>
        Join link or session id
        <input name="link" value={value} onInput={(e) => setValue(e.currentTarget.value)} />
      </label>
      <button type="submit" class="secondary" disabled={!value.trim()}>
        Open
      </button>
    </form>
  );
}

export function HomePage({ join, navigate }: { join: JoinRequest | null; navigate: Navigate }) {
  const api = useMemo(() => new Api(null), []);
  const engine = useEngineStatus(api);
  const { notices, report, dismiss } = useNotices();
  return (
    <div class="page home">
      <header class="top">
        <h1>
          <a href="/" onClick={(e) => (e.preventDefault(), navigate('/'))}>
            CoDraw
          </a>
        </h1>
        <p class="muted">Describe a scene turn by turn; a diffusion model draws it while you watch.</p>
      </header>
      <main class="home-grid">
        {join ? (
          <JoinForm join={join} navigate={navigate} report={report} />
        ) : (
          <>
            <CreateForm api={api} navigate={navigate} datasets={datasetsFrom(engine.status?.models)} report={report} />
            <PasteLink navigate={navigate} />
          </>
        )}
        <EngineStatusPanel status={engine.status} error={engine.error} />
      </main>
      <Notices notices={notices} dismiss={dismiss} />
    </div>
  );
}
