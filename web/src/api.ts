/**
 * Every GraphQL operation the web client sends, in one place: queries and mutations over HTTP (fetch), the two
 * subscriptions over graphql-ws on the same path. The types below mirror the selection sets, not the whole schema.
 */
import { createClient, type Client } from 'graphql-ws/client';

export type Role = 'TELLER' | 'DRAWER' | 'OBSERVER';
export const ROLES: readonly Role[] = ['TELLER', 'DRAWER', 'OBSERVER'];
export type TurnStatus = 'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED';

export interface ImageRef {
  id: string;
  url: string;
  width: number;
  height: number;
}

export interface ParticipantView {
  id: string;
  name: string;
  role: Role;
  online: boolean;
  left: boolean;
}

export interface AuthorView {
  id: string;
  name: string;
  role: Role;
}

export interface MessageView {
  id: string;
  text: string;
  createdAt: string;
  /** The turn whose text included this drawer reply (null: not yet part of a turn). */
  turnId: string | null;
  author: AuthorView;
}

export interface TurnView {
  id: string;
  index: number;
  instruction: string;
  text: string;
  status: TurnStatus;
  queuePosition: number | null;
  error: string | null;
  createdAt: string;
  author: AuthorView;
  parent: { id: string } | null;
  resultImage: ImageRef | null;
  settings: { steps: number; seed: number };
}

export interface SessionView {
  id: string;
  title: string;
  dataset: string;
  model: string;
  allowDrawerTurns: boolean;
  background: ImageRef;
  headTurn: { id: string } | null;
  participants: ParticipantView[];
  messages: MessageView[];
  turns: TurnView[];
  me: AuthorView;
}

export type SessionEventKind =
  | 'PARTICIPANT_JOINED'
  | 'PARTICIPANT_LEFT'
  | 'PARTICIPANT_ONLINE'
  | 'PARTICIPANT_OFFLINE'
  | 'MESSAGE'
  | 'TURN_QUEUED'
  | 'TURN_STARTED'
  | 'TURN_FINISHED'
  | 'TURN_FAILED'
  | 'TURN_CANCELLED'
  | 'HEAD_MOVED';

export interface SessionEvent {
  kind: SessionEventKind;
  sessionId: string;
  at: string;
  headTurnId: string | null;
  participant: ParticipantView | null;
  message: MessageView | null;
  turn: TurnView | null;
}

export interface ProgressFrame {
  turnId: string;
  sequence: number;
  step: number;
  totalSteps: number;
  etaMs: number;
  /** PNG data URL of the predicted x0 (null when the engine skipped it). */
  preview: string | null;
  final: boolean;
  image: ImageRef | null;
}

/** A model the server serves (EngineStatus.models). */
export interface ServedModel {
  key: string;
  name: string;
  datasets: string[];
  loaded: boolean;
  canvasSize: number;
  queueLength: number;
  running: number;
  stepMs: number | null;
}

export interface EngineStatusView {
  backend: string;
  device: string;
  threads: number;
  model: string;
  queueLength: number;
  busy: boolean;
  batching: boolean;
  maxBatchSize: number;
  turnDefaults: { steps: number; guidanceScale: number; icmGuidanceScale: number; candidates: number };
  models: ServedModel[];
}

export interface JoinResult {
  token: string;
  session: { id: string; title: string };
  participant: AuthorView;
}

/** An error the API answered with: its stable code and the server's message (written for a person). */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** RATE_LIMITED: how long to wait, in ms. */
  get retryAfterMs(): number | null {
    const v = this.extensions.retryAfterMs;
    return typeof v === 'number' ? v : null;
  }
}

// ---------------------------------------------------------------- selection sets

const IMAGE = 'id url width height';
const AUTHOR = 'id name role';
const PARTICIPANT = 'id name role online left';
const MESSAGE = `id text createdAt turnId author { ${AUTHOR} }`;
const TURN = `id index instruction text status queuePosition error createdAt author { ${AUTHOR} } parent { id }
  resultImage { ${IMAGE} } settings { steps seed }`;
/** Sizes kept under the server's query cost limit (lists multiply their items' cost). */
const HISTORY = { messages: 40, turns: 40 };

const SESSION_QUERY = `query Session($id: ID!) {
  session(id: $id) {
    id title dataset model allowDrawerTurns background { ${IMAGE} } headTurn { id }
    participants { ${PARTICIPANT} } messages(last: ${HISTORY.messages}) { ${MESSAGE} } turns(last: ${HISTORY.turns}) { ${TURN} }
    me { ${AUTHOR} }
  }
}`;

const ENGINE_FIELDS =
  'backend device threads model queueLength busy batching maxBatchSize turnDefaults { steps guidanceScale icmGuidanceScale candidates } ' +
  'models { key name datasets loaded canvasSize queueLength running stepMs }';

const JOIN_PAYLOAD = `token session { id title } participant { ${AUTHOR} }`;

const EVENTS_SUBSCRIPTION = `subscription Events($sessionId: ID!) {
  sessionEvents(sessionId: $sessionId) { kind sessionId at headTurnId participant { ${PARTICIPANT} } message { ${MESSAGE} }
    turn { ${TURN} } }
}`;

const PROGRESS_SUBSCRIPTION = `subscription Progress($sessionId: ID!) {
  turnProgress(sessionId: $sessionId) { turnId sequence step totalSteps etaMs preview final image { ${IMAGE} } }
}`;

// ---------------------------------------------------------------- HTTP

interface GraphQLResponse<T> {
  data?: T | null;
  errors?: Array<{ message: string; extensions?: Record<string, unknown> }>;
}

/** Queries and mutations over HTTP with the bearer token of one identity (or none). */
export class Api {
  constructor(
    readonly token: string | null,
    private readonly origin = window.location.origin,
  ) {}

  async request<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.origin}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(this.token ? { authorization: `Bearer ${this.token}` } : {}) },
        body: JSON.stringify({ query, variables }),
      });
    } catch {
      throw new ApiError('The server cannot be reached. Check that it is running, then try again.', 'NETWORK');
    }
    let body: GraphQLResponse<T>;
    try {
      body = (await res.json()) as GraphQLResponse<T>;
    } catch {
      throw new ApiError(`The server answered ${res.status} without a GraphQL result.`, 'HTTP_ERROR');
    }
    const first = body.errors?.[0];
    if (first) throw new ApiError(first.message, String(first.extensions?.code ?? 'UNKNOWN'), first.extensions ?? {});
    if (!body.data) throw new ApiError(`The server answered ${res.status} without data.`, 'HTTP_ERROR');
    return body.data;
  }

  async createSession(input: { title: string; name: string; dataset: string; allowDrawerTurns: boolean }): Promise<JoinResult> {
    const d = await this.request<{ createSession: JoinResult }>(
      `mutation Create($input: CreateSessionInput!) { createSession(input: $input) { ${JOIN_PAYLOAD} } }`,
      { input },
    );
    return d.createSession;
  }

  /** `invite` is passed through only when a join link carried one (servers with invitations require it). */
  async joinSession(input: { sessionId: string; name: string; role: Role; invite?: string | null }): Promise<JoinResult> {
    const { invite, ...rest } = input;
    const d = await this.request<{ joinSession: JoinResult }>(
      `mutation Join($input: JoinSessionInput!) { joinSession(input: $input) { ${JOIN_PAYLOAD} } }`,
      { input: invite ? { ...rest, invite } : rest },
    );
    return d.joinSession;
  }

  async session(id: string): Promise<SessionView> {
    return (await this.request<{ session: SessionView }>(SESSION_QUERY, { id })).session;
  }

  async sendMessage(sessionId: string, text: string): Promise<MessageView> {
    const d = await this.request<{ sendMessage: MessageView }>(
      `mutation Send($sessionId: ID!, $text: String!) { sendMessage(sessionId: $sessionId, text: $text) { ${MESSAGE} } }`,
      { sessionId, text },
    );
    return d.sendMessage;
  }

  async submitTurn(sessionId: string, instruction: string): Promise<TurnView> {
    const d = await this.request<{ submitTurn: TurnView }>(
      `mutation Submit($input: SubmitTurnInput!) { submitTurn(input: $input) { ${TURN} } }`,
      { input: { sessionId, instruction } },
    );
    return d.submitTurn;
  }

  async cancelTurn(turnId: string): Promise<TurnView> {
    const d = await this.request<{ cancelTurn: TurnView }>(
      `mutation Cancel($turnId: ID!) { cancelTurn(turnId: $turnId) { ${TURN} } }`,
      { turnId },
    );
    return d.cancelTurn;
  }

  async revertToTurn(turnId: string): Promise<{ headTurn: { id: string } | null }> {
    const d = await this.request<{ revertToTurn: { headTurn: { id: string } | null } }>(
      `mutation Revert($turnId: ID!) { revertToTurn(turnId: $turnId) { id headTurn { id } } }`,
      { turnId },
    );
    return d.revertToTurn;
  }

  async leaveSession(sessionId: string): Promise<void> {
    await this.request(`mutation Leave($sessionId: ID!) { leaveSession(sessionId: $sessionId) { id } }`, { sessionId });
  }

  async engineStatus(): Promise<EngineStatusView> {
    const d = await this.request<{ engineStatus: EngineStatusView }>(`query Engine { engineStatus { ${ENGINE_FIELDS} } }`);
    return d.engineStatus;
  }

  /** A join code for a role (tellers make them). */
  async createInvite(sessionId: string, role: Role): Promise<string> {
    const d = await this.request<{ createInvite: { code: string } }>(
      `mutation Invite($sessionId: ID!, $role: Role!) { createInvite(sessionId: $sessionId, role: $role) { code role } }`,
      { sessionId, role },
    );
    return d.createInvite.code;
  }

  /** The PNG behind an image URL (the image route wants the bearer token, so <img src> cannot fetch it itself). */
  async imageBlob(url: string): Promise<Blob> {
    const res = await fetch(`${this.origin}${url}`, { headers: this.token ? { authorization: `Bearer ${this.token}` } : {} });
    if (!res.ok) throw new ApiError(`The image could not be loaded (HTTP ${res.status}).`, 'HTTP_ERROR');
    return res.blob();
  }
}

// ---------------------------------------------------------------- graphql-ws

export type LinkState = 'connecting' | 'live' | 'reconnecting';

/** Codes after which this identity cannot read the session any more (left, or the server forgot the token). */
export const ACCESS_LOST_CODES: ReadonlySet<string> = new Set(['FORBIDDEN', 'UNAUTHENTICATED', 'NOT_FOUND']);
const RESUBSCRIBE_MS = 5_000;

export interface LiveHandlers {
  event(e: SessionEvent): void;
  frame(f: ProgressFrame): void;
  /** Events may have been missed (a new connection, the first included, or a subscription started again): fetch the snapshot. */
  catchUp(): void;
  state(s: LinkState): void;
  /** A subscription refused or ended with an error (e.g. FORBIDDEN after leaving). */
  error(e: ApiError): void;
}

/** Subscribe to one session's events and progress; reconnects by itself (backoff up to 5 s). Returns stop(). */
export function subscribeSession(token: string, sessionId: string, h: LiveHandlers): () => void {
  const url = `${window.location.protocol === 'https:' ? 'wss' : 'ws'}://${window.location.host}/graphql`;
  let connectedOnce = false;
  const client: Client = createClient({
    url,
    connectionParams: { authorization: `Bearer ${token}` },
    lazy: false,
    keepAlive: 10_000,
    retryAttempts: Number.POSITIVE_INFINITY,
    shouldRetry: () => true,
    retryWait: async (retries) => {
      await new Promise((r) => setTimeout(r, Math.min(5_000, 300 * 2 ** retries)));
    },
    onNonLazyError: () => undefined,
    on: {
      connecting: () => h.state(connectedOnce ? 'reconnecting' : 'connecting'),
      connected: () => {
        h.state('live');
        connectedOnce = true;
        h.catchUp();
      },
      closed: () => h.state(connectedOnce ? 'reconnecting' : 'connecting'),
    },
  });
  let stopped = false;
  /** Follow one subscription; one that the server ends with an error (e.g. RATE_LIMITED) is started again. */
  const follow = <T,>(query: string, pick: (d: Record<string, unknown>) => T, use: (v: T) => void): (() => void) => {
    let unsubscribe = (): void => undefined;
    const start = (): void => {
      unsubscribe = client.subscribe<Record<string, unknown>>(
        { query, variables: { sessionId } },
        {
          next: (r) => {
            const e = r.errors?.[0];
            if (e) h.error(new ApiError(e.message, String(e.extensions?.code ?? 'UNKNOWN'), e.extensions ?? {}));
            else if (r.data) use(pick(r.data));
          },
          error: (err: unknown) => {
            const first = Array.isArray(err) ? (err[0] as { message?: string; extensions?: Record<string, unknown> } | undefined) : undefined;
            const e = first?.message ? new ApiError(first.message, String(first.extensions?.code ?? 'UNKNOWN'), first.extensions ?? {}) : null;
            if (e) h.error(e);
            if (stopped || (e && ACCESS_LOST_CODES.has(e.code))) return;
            setTimeout(() => {
              if (stopped) return;
              start();
              h.catchUp();
            }, RESUBSCRIBE_MS);
          },
          complete: () => undefined,
        },
      );
    };
    start();
    return () => unsubscribe();
  };
  const stopEvents = follow(EVENTS_SUBSCRIPTION, (d) => d.sessionEvents as SessionEvent, h.event);
  const stopProgress = follow(PROGRESS_SUBSCRIPTION, (d) => d.turnProgress as ProgressFrame, h.frame);
  return () => {
    stopped = true;
    stopEvents();
    stopProgress();
    void client.dispose();
  };
}
