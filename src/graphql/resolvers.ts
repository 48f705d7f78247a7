/**
 * Thin resolvers: each translates a GraphQL field into one call on the sessions service. Access rules are the
 * service's; nested objects are reached only through a root field that already checked membership.
 */
import type { Resolvers } from './generated/resolvers.js';
import { graphql } from './graphqlRuntime.js';

const { GraphQLScalarType, Kind } = graphql;

const DateTime = new GraphQLScalarType<Date, string>({
  name: 'DateTime',
  description: 'An ISO-8601 date-time string in UTC.',
  serialize: (v) => (v instanceof Date ? v : new Date(v as string)).toISOString(),
  parseValue: (v) => {
    const d = new Date(v as string);
    if (Number.isNaN(d.getTime())) throw new TypeError('DateTime must be an ISO-8601 string');
    return d;
  },
  parseLiteral: (ast) => {
    if (ast.kind !== Kind.STRING) throw new TypeError('DateTime must be an ISO-8601 string');
    const d = new Date(ast.value);
    if (Number.isNaN(d.getTime())) throw new TypeError('DateTime must be an ISO-8601 string');
    return d;
  },
});

export const resolvers: Resolvers = {
  DateTime,
  // The enum's internal values are the sampler's solver names (codegen.ts maps them alike).
  Solver: { DDIM: 'ddim', DPM_SOLVER_PP_2M: 'dpm++2m' },

  Query: {
    session: (_p, { id }, ctx) => ctx.service.getSession(ctx.tokenHash, id),
    sessions: (_p, _a, ctx) => ctx.service.listSessions(ctx.tokenHash),
    turn: (_p, { id }, ctx) => ctx.service.getTurn(ctx.tokenHash, id),
    image: (_p, { id }, ctx) => ctx.service.getImage(ctx.tokenHash, id),
    engineStatus: (_p, _a, ctx) => ctx.service.engineStatus(),
  },

  Mutation: {
    createSession: (_p, { input }, ctx) => ctx.service.createSession(ctx.tokenHash, input),
    joinSession: (_p, { input }, ctx) => ctx.service.joinSession(ctx.tokenHash, ctx.token, input),
    createInvite: (_p, args, ctx) => ctx.service.createInvite(ctx.tokenHash, args),
    revokeInvite: (_p, { inviteId }, ctx) => ctx.service.revokeInvite(ctx.tokenHash, inviteId),
    leaveSession: (_p, { sessionId }, ctx) => ctx.service.leaveSession(ctx.tokenHash, sessionId),
    sendMessage: (_p, { sessionId, text }, ctx) => ctx.service.sendMessage(ctx.tokenHash, sessionId, text),
    submitTurn: (_p, { input }, ctx) => ctx.service.submitTurn(ctx.tokenHash, input),
    cancelTurn: (_p, { turnId }, ctx) => ctx.service.cancelTurn(ctx.tokenHash, turnId),
    revertToTurn: (_p, { turnId }, ctx) => ctx.service.revertToTurn(ctx.tokenHash, turnId),
  },

  // The service's iterators yield the records themselves (not `{ sessionEvents: record }`), so `resolve` passes
  // each one through; the cast bridges codegen's payload-wrapper type.
  Subscription: {
    sessionEvents: {
      subscribe: (_p, { sessionId }, ctx) => ctx.service.subscribeEvents(ctx.tokenHash, sessionId, ctx.backlogged),
      resolve: (event: unknown) => event as never,
    },
    turnProgress: {
      subscribe: (_p, { sessionId }, ctx) => ctx.service.subscribeProgress(ctx.tokenHash, sessionId, ctx.backlogged),
      resolve: (frame: unknown, _a: unknown, ctx: { frameSent?: (at: Date) => void }) => {
        const f = frame as { at: Date; final: boolean };
        if (!f.final) ctx.frameSent?.(f.at);
        return frame as never;
      },
    },
  },

  JoinPayload: {
    // createSession with a token already in hand returns that token (one token, many sessions).
    token: (r, _a, ctx) => r.token || ctx.token || '',
  },

  DrawingSession: {
    background: (s, _a, ctx) => ctx.service.imageMeta(s.backgroundImageId),
    headTurn: (s, _a, ctx) => ctx.service.turnById(s.headTurnId),
    canvas: (s, _a, ctx) => ctx.service.canvas(s),
    participants: (s, _a, ctx) => ctx.service.participants(s.id),
    messages: (s, { last }, ctx) => ctx.service.messages(s.id, last ?? 50),
    turns: (s, { last }, ctx) => ctx.service.turns(s.id, last ?? 50),
    me: (s, _a, ctx) => ctx.service.participant(s.viewerId),
  },

  Participant: {
    left: (p) => p.leftAt !== null,
  },

  Invite: {
    revoked: (i) => i.revokedAt !== null,
  },

  Message: {
    author: (m, _a, ctx) => ctx.service.participant(m.authorId),
  },

  Turn: {
    author: (t, _a, ctx) => ctx.service.participant(t.authorId),
    settings: (t) => t,
    timings: (t) => t,
    queuePosition: (t, _a, ctx) => ctx.service.queuePosition(t),
    latestPreview: (t, _a, ctx) => ctx.service.latestPreview(t),
    referenceImage: (t, _a, ctx) => ctx.service.imageMetaOrNull(t.referenceImageId),
    resultImage: (t, _a, ctx) => ctx.service.imageMetaOrNull(t.resultImageId),
    parent: (t, _a, ctx) => ctx.service.turnById(t.parentTurnId),
  },

  GeneratedImage: {
    url: (img) => `/images/${img.id}.png`,
    dataUrl: (img, _a, ctx) => ctx.service.dataUrl(img.id),
  },

  SessionEvent: {
    headTurnId: (e) => e.headTurnId ?? null,
    participant: (e) => e.participant ?? null,
    message: (e) => e.message ?? null,
    turn: (e) => e.turn ?? null,
  },
};
