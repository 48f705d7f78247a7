/**
 * `/s/<id>`: one session, live. The snapshot comes from the `session` query; `sessionEvents` and `turnProgress`
 * move it forward; after a dropped socket the client reconnects by itself and fetches the snapshot again.
 */
import { useEffect, useMemo, useState } from 'preact/hooks';
import { ACCESS_LOST_CODES, Api, ApiError, subscribeSession, type LinkState, type Role, type TurnView } from '../api.js';
import { forgetIdentity, loadIdentity, type Identity } from '../identity.js';
import type { Navigate } from '../main.js';
import { applyEvent, applyFrame, fromSnapshot, pendingReplies, type LiveSession } from '../sessionState.js';
import { CanvasPanel } from './CanvasPanel.js';
import { ChatPanel } from './ChatPanel.js';
import { Composer } from './Composer.js';
import { EngineStatusPanel } from './EngineStatusPanel.js';
import { Notices, useNotices } from './Notices.js';
import { PeoplePanel } from './PeoplePanel.js';
import { TurnHistory } from './TurnHistory.js';
import { useEngineStatus } from './useEngineStatus.js';


/** Roles a teller hands out join links for. */
const INVITABLE: Role[] = ['DRAWER', 'OBSERVER', 'TELLER'];

const LINK_TEXT: Record<LinkState, string> = {
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting… (updates catch up by themselves)',
};

export function SessionPage({ sessionId, navigate }: { sessionId: string; navigate: Navigate }) {
  const identity = useMemo(() => loadIdentity(sessionId), [sessionId]);
  useEffect(() => {
    if (!identity) navigate(`/?session=${encodeURIComponent(sessionId)}`, { replace: true });
  }, [identity]);
  return identity ? <LiveSessionView identity={identity} navigate={navigate} /> : null;
}

function LiveSessionView({ identity, navigate }: { identity: Identity; navigate: Navigate }) {
  const { sessionId } = identity;
  const api = useMemo(() => new Api(identity.token), [identity.token]);
  const [live, setLive] = useState<LiveSession | null>(null);
  const [link, setLink] = useState<LinkState>('connecting');
  const [lost, setLost] = useState<string | null>(null);
  const { notices, report, dismiss } = useNotices();
  const engine = useEngineStatus(api);

  useEffect(() => {
    let stopped = false;
    const load = () =>
      api.session(sessionId).then(
        (view) => !stopped && setLive((prev) => fromSnapshot(view, prev ?? undefined)),
        (err: unknown) => {
          if (stopped) return;
          if (err instanceof ApiError && ACCESS_LOST_CODES.has(err.code)) setLost(err.message);
          else report(err, 'loading the session');
        },
      );
    void load();
    const stop = subscribeSession(identity.token, sessionId, {
      event: (e) => {
        setLive((prev) => (prev ? applyEvent(prev, e) : prev));
        if (e.turn) engine.refresh();
      },
      frame: (f) => setLive((prev) => (prev ? applyFrame(prev, f) : prev)),
      // Whatever happened before the subscriptions were live, or while the socket was down, is in the snapshot.
      catchUp: () => void load(),
      state: setLink,
      error: (err) => {
        if (ACCESS_LOST_CODES.has(err.code)) setLost(err.message);
        else report(err, 'following the session');
      },
    });
    return () => {
      stopped = true;
      stop();
    };
  }, [api, sessionId]);

  // Join links per role: a link carries an invitation code, which tellers make.
  const [invites, setInvites] = useState<Partial<Record<Role, string>>>({});
  const myRole = live?.session.me.role;
  useEffect(() => {
    if (myRole !== 'TELLER') return;
    let stopped = false;
    for (const r of INVITABLE) {
      api.createInvite(sessionId, r).then(
        (code) => !stopped && setInvites((all) => ({ ...all, [r]: code })),
        (err: unknown) => !stopped && report(err, `making a ${r.toLowerCase()} invitation`),
      );
    }
    return () => {
      stopped = true;
    };
  }, [myRole, api]);

  const title = live?.session.title;
  useEffect(() => {
    document.title = title ? `${title} · CoDraw` : 'CoDraw';
  }, [title]);

  /** Run a mutation; a refusal becomes a notice. Returns whether it went through. */
  const act = async (doing: string, run: () => Promise<unknown>): Promise<boolean> => {
    try {
      await run();
      return true;
    } catch (err) {
      report(err, doing);
      return false;
    }
  };

  if (lost) {
    return (
      <div class="page">
        <main class="panel lost" role="alert">
          <h1>You are not in this session</h1>
          <p>{lost}</p>
          <button
            type="button"
            onClick={() => {
              forgetIdentity(sessionId);
              navigate(`/?session=${encodeURIComponent(sessionId)}`, { replace: true });
            }}
          >
            Join it again
          </button>{' '}
          <a href="/" onClick={(e) => (e.preventDefault(), navigate('/'))}>
            Start a new session
          </a>
        </main>
      </div>
    );
  }
  if (!live) {
    return (
      <div class="page">
        <p class="panel" aria-busy="true">
          Loading the session…
        </p>
        <Notices notices={notices} dismiss={dismiss} />
      </div>
    );
  }

  const { session } = live;
  const me = session.me;
  const role: Role = me.role;
  const canSubmit = role === 'TELLER' || (role === 'DRAWER' && session.allowDrawerTurns);
  const canCancel = (t: TurnView) => role === 'TELLER' || (role === 'DRAWER' && t.author.id === me.id);
  const plainShareRoles: Role[] = role === 'TELLER' ? INVITABLE : role === 'DRAWER' ? ['OBSERVER'] : [];
  const shareRoles = plainShareRoles.filter((r) => invites[r]);
  const cancel = (t: TurnView) => void act(`cancelling turn ${t.index}`, () => api.cancelTurn(t.id));
  const revert = (t: TurnView) =>
    void act(`reverting to turn ${t.index}`, async () => {
      const r = await api.revertToTurn(t.id);
      setLive((prev) => (prev ? { ...prev, session: { ...prev.session, headTurn: r.headTurn } } : prev));
    });
  const leave = () => {
    if (!window.confirm(`Leave “${session.title}”? You would need a new join link to come back.`)) return;
    void act('leaving the session', async () => {
      await api.leaveSession(sessionId);
      forgetIdentity(sessionId);
      navigate('/');
    });
  };

  return (
    <div class="page session" data-role={role}>
      <header class="top">
        <h1>
          <a href="/" onClick={(e) => (e.preventDefault(), navigate('/'))}>
            CoDraw
          </a>{' '}
          <span class="title">{session.title}</span>
        </h1>
        <p class="meta">
          <span>
            {me.name} · <span class={`role role-${role.toLowerCase()}`}>{role.toLowerCase()}</span>
          </span>
          <span class="muted">{session.dataset}</span>
          <span class={`link link-${link}`} data-testid="link-state" role="status">
            {LINK_TEXT[link]}
          </span>
          <button type="button" class="ghost small" onClick={leave}>
            Leave
          </button>
        </p>
      </header>
      <main class="session-grid">
        <div class="stage">
          <CanvasPanel live={live} api={api} canCancel={canCancel} cancel={cancel} canRevert={role === 'TELLER'} revert={revert} />
          {canSubmit ? (
            <Composer
              replies={pendingReplies(live)}
              submit={(text) =>
                act('submitting the turn', async () => {
                  const t = await api.submitTurn(sessionId, text);
                  setLive((prev) => (prev ? applyEvent(prev, { kind: 'TURN_QUEUED', sessionId, at: t.createdAt, headTurnId: null, participant: null, message: null, turn: t }) : prev));
                })
              }
            />
          ) : (
            <p class="panel muted" data-testid="no-composer">
              {role === 'OBSERVER' ? 'You are watching. Tellers write the instructions.' : 'The teller writes the instructions; your chat replies go into the next turn.'}
            </p>
          )}
        </div>
        <div class="side">
          <PeoplePanel participants={session.participants} meId={me.id} sessionId={sessionId} shareRoles={shareRoles} invites={invites} />
          <ChatPanel
            messages={session.messages}
            turns={session.turns}
            meId={me.id}
            canChat={role !== 'OBSERVER'}
            send={(text) =>
              act('sending the message', async () => {
                const m = await api.sendMessage(sessionId, text);
                setLive((prev) => (prev ? applyEvent(prev, { kind: 'MESSAGE', sessionId, at: m.createdAt, headTurnId: null, participant: null, message: m, turn: null }) : prev));
              })
            }
          />
        </div>
        <div class="wide">
          <TurnHistory api={api} live={live} canRevert={role === 'TELLER'} canCancel={canCancel} revert={revert} cancel={cancel} />
          <EngineStatusPanel status={engine.status} error={engine.error} />
        </div>
      </main>
      <Notices notices={notices} dismiss={dismiss} />
    </div>
  );
}
