/** Who is in the session and who is online, and the join links to share per role. */
import { useState } from 'preact/hooks';
import type { ParticipantView, Role } from '../api.js';
import { joinLink } from '../identity.js';

function ShareLink({ role, url }: { role: Role; url: string }) {
  const [copied, setCopied] = useState(false);
  const id = `link-${role.toLowerCase()}`;
  const copy = async (e: Event) => {
    const input = (e.currentTarget as HTMLElement).parentElement?.querySelector('input');
    try {
      await navigator.clipboard.writeText(url);
      setCopied(true);
      setTimeout(() => setCopied(false), 2000);
    } catch {
      // No clipboard (plain http off localhost): select the text for Ctrl+C instead.
      input?.select();
    }
  };
  return (
    <div class="share">
      <label for={id}>Invite {role === 'OBSERVER' ? 'an' : 'a'} {role.toLowerCase()}</label>
      <div class="row">
        <input id={id} readOnly value={url} data-testid={id} onFocus={(e) => e.currentTarget.select()} />
        <button type="button" class="secondary" onClick={copy}>
          {copied ? 'Copied' : 'Copy'}
        </button>
      </div>
    </div>
  );
}

export function PeoplePanel(props: { participants: ParticipantView[]; meId: string; sessionId: string; shareRoles: Role[]; invites?: Partial<Record<Role, string>> }) {
  const people = props.participants.filter((p) => !p.left);
  const online = people.filter((p) => p.online).length;
  return (
    <section class="panel people" aria-labelledby="people-title">
      <h2 id="people-title">
        People <span class="muted small">{online} online</span>
      </h2>
      <ul class="participants" data-testid="participants">
        {people.map((p) => (
          <li key={p.id} data-online={p.online ? 'true' : 'false'}>
            <span class={`dot ${p.online ? 'on' : 'off'}`} role="img" aria-label={p.online ? 'online' : 'offline'} />
            <span class="name">
              {p.name}
              {p.id === props.meId ? ' (you)' : ''}
            </span>
            <span class={`role role-${p.role.toLowerCase()}`}>{p.role.toLowerCase()}</span>
          </li>
        ))}
      </ul>
      {props.shareRoles.map((r) => (
        <ShareLink key={r} role={r} url={joinLink(window.location.origin, props.sessionId, r, props.invites?.[r])} />
      ))}
    </section>
  );
}
