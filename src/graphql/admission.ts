/**
 * The one admission path of every GraphQL operation, over HTTP (Apollo's context function and the limits plugin)
 * and over graphql-ws (onConnect and onSubscribe): who is calling, how many operations they may still run, and
 * whether the operation is one the server will run (shape, cost, text, transport, drain). Everything a client can
 * get wrong ends here as a typed GraphQL error before any resolver runs, so a refused operation writes nothing.
 *
 * Order, the same on both transports:
 * 1. `identify`: a bearer token is looked up once (then remembered); an unknown one counts against the caller's
 *    address before the lookup, so guessing tokens is rate limited like anything else.
 * 2. `charge(caller)`: one operation, before parsing, so parse and validation failures count too.
 * 3. parse and validate (Apollo does it for HTTP; `prepare` for graphql-ws, with the same rules and codes).
 * 4. `checkOperation`: transport, drain, root fields (a mutation's extra root fields are charged as operations),
 *    lone surrogates in strings, depth, cost.
 */
import type {
  DocumentNode,
  ExecutionArgs,
  GraphQLError,
  GraphQLSchema,
  OperationTypeNode,
  ValidationRule,
} from 'graphql';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Limits } from '../config/index.js';
import { apiError } from './errors.js';
import { graphql } from './graphqlRuntime.js';
import { checkOperation, RateLimiter, rootFieldCount, selectOperation } from './limits.js';

const { GraphQLError: GraphQLErrorClass, MaxIntrospectionDepthRule, getVariableValues, parse, specifiedRules, validate } = graphql;

/**
 * Introspection fields cannot be aliased (except `__type`, bounded by the root-field cap): without aliases
 * repeated selections merge, so an introspection answer is at most the schema's size, whatever the query.
 */
const NoIntrospectionAliasesRule: ValidationRule = (context) => ({
  Field(node) {
    if (!node.alias || node.alias.value === node.name.value) return;
    const parent = context.getParentType();
    if (node.name.value === '__schema' || (parent !== null && parent !== undefined && parent.name.startsWith('__'))) {
      context.reportError(
        new GraphQLErrorClass(`Introspection fields cannot be aliased ("${node.alias.value}: ${node.name.value}"); select each once.`, { nodes: node }),
      );
    }
  },
});

/**
 * Validation rules beyond the specification's, for both transports: introspection cannot nest without bound
 * (graphql's MaxIntrospectionDepthRule) nor be multiplied by aliases.
 */
export const extraValidationRules: ValidationRule[] = [MaxIntrospectionDepthRule, NoIntrospectionAliasesRule];

/** Who is calling: the token (if any) and the key their operations are counted under. */
export interface Caller {
  token: string | null;
  /** SHA-256 of the token: the caller's identity towards the sessions service. */
  tokenHash: string | null;
  /** Rate-limit key: the token's hash, or the network address of an anonymous caller. */
  key: string;
}

export interface AdmissionOptions {
  schema: GraphQLSchema;
  limits: Limits;
  /** Does this token belong to some participant (a database lookup)? */
  tokenExists(token: string): Promise<boolean>;
  hashToken(token: string): string;
  now?: () => number;
}

export type Transport = 'http' | 'ws';

export interface OperationRequest {
  document: DocumentNode;
  operationName?: string | null;
  variables?: Record<string, unknown> | null;
  transport: Transport;
}

/** What graphql-ws sends in a subscribe message. */
export interface SubscribePayload {
  query: string;
  operationName?: string | null;
  variables?: Record<string, unknown> | null;
}

/** Token hashes known to be valid, bounded (oldest forgotten first); tokens never become invalid. */
class KnownTokens {
  private readonly set = new Set<string>();
  constructor(private readonly max: number) {}
  has(h: string): boolean {
    return this.set.has(h);
  }
  add(h: string): void {
    this.set.add(h);
    if (this.set.size > this.max) this.set.delete(this.set.values().next().value!);
  }
}

const LONE_SURROGATE = /\p{Cs}/u;

/** Does any string (or key) in a JSON-like value contain a lone surrogate? */
function hasLoneSurrogate(v: unknown, depth = 0): boolean {
  if (typeof v === 'string') return LONE_SURROGATE.test(v);
  if (depth > 64 || v === null || typeof v !== 'object') return false;
  if (Array.isArray(v)) return v.some((x) => hasLoneSurrogate(x, depth + 1));
  return Object.entries(v).some(([k, x]) => LONE_SURROGATE.test(k) || hasLoneSurrogate(x, depth + 1));
}

function addressKey(address: string | undefined): string {
  return `ip:${address ?? 'unknown'}`;
}

export class Admission {
  readonly rateLimiter: RateLimiter;
  private readonly known = new KnownTokens(100_000);
  private draining = false;

  constructor(private readonly o: AdmissionOptions) {
    this.rateLimiter = new RateLimiter(o.limits.maxOperationsPerMinute, o.now);
  }

  /**
   * The caller behind a credential (`Bearer <token>`, a bare token, or nothing). An unknown token is
   * UNAUTHENTICATED, and counted against the caller's address first (RATE_LIMITED once that is spent, without
   * a lookup).
   */
  async identify(credential: string | null, address: string | undefined): Promise<Caller> {
    await this.settle();
    if (credential === null) return { token: null, tokenHash: null, key: addressKey(address) };
    const token = bearer(credential);
    const tokenHash = token ? this.o.hashToken(token) : null;
    if (token && tokenHash && this.known.has(tokenHash)) return { token, tokenHash, key: tokenHash };
    const limited = this.rateLimiter.hit(addressKey(address));
    if (limited) throw limited;
    if (!token || !tokenHash || !(await this.o.tokenExists(token))) {
      throw apiError('UNAUTHENTICATED', 'The bearer token is not valid; join a session to get one.');
    }
    this.known.add(tokenHash);
    return { token, tokenHash, key: tokenHash };
  }

  /**
   * Let the event loop handle what arrived with this request before deciding on it. Node delivers a signal in the
   * event loop's poll phase, and a request read in the same phase could otherwise run to its commit in microtasks
   * (the SQLite driver answers without I/O waits) before the SIGTERM handler starts the drain.
   */
  async settle(): Promise<void> {
    await nextTurn();
  }

  /** Count `n` operations against the caller's quota; throws RATE_LIMITED (with a retry time) when over it. */
  charge(caller: Caller, n = 1): void {
    const limited = this.rateLimiter.hit(caller.key, n);
    if (limited) throw limited;
  }

  /** From now on mutations and new subscriptions are refused with INVALID_STATE (the server drains). */
  startDraining(): void {
    this.draining = true;
  }

  /**
   * The checks on a parsed and validated operation; the first error refuses it. A mutation's root fields beyond
   * the first are charged as operations here (the first was charged on arrival).
   */
  checkOperation(caller: Caller, r: OperationRequest): GraphQLError[] {
    const { op, fragments } = selectOperation(r.document, r.operationName);
    if (!op) return []; // graphql reports an unknown or ambiguous operation name itself
    const kind: OperationTypeNode = op.operation;
    if (kind === 'subscription' && r.transport === 'http') {
      return [apiError('BAD_REQUEST', 'Subscriptions are served over graphql-ws (a WebSocket on the same /graphql path), not over HTTP.')];
    }
    if (this.draining && kind !== 'query') {
      return [apiError('INVALID_STATE', 'The server is shutting down and takes no new work; try again shortly.')];
    }
    // (In the document itself a lone surrogate is already a syntax error; variables arrive as JSON strings.)
    if (hasLoneSurrogate(r.variables ?? null)) {
      return [apiError('BAD_USER_INPUT', 'A string in the request contains a lone UTF-16 surrogate; send valid Unicode text.')];
    }
    const shape = checkOperation(this.o.limits, { schema: this.o.schema, document: r.document, operationName: r.operationName, variables: r.variables });
    if (shape.length) return shape;
    if (kind === 'mutation') {
      const extra = rootFieldCount(op, fragments) - 1;
      if (extra > 0) {
        const limited = this.rateLimiter.hit(caller.key, extra);
        if (limited) return [limited];
      }
    }
    return [];
  }

  /**
   * graphql-ws: parse, validate and coerce the variables of a subscribe message with the rules and codes HTTP
   * gets from Apollo, then `checkOperation`. Returns what graphql-ws executes, or the errors that fail this one
   * operation (the socket and its other subscriptions go on).
   */
  prepare(caller: Caller, payload: SubscribePayload): { args: Omit<ExecutionArgs, 'contextValue'> } | { errors: GraphQLError[] } {
    if (typeof payload.query !== 'string') {
      return { errors: [apiError('BAD_REQUEST', 'A subscribe message needs a `query` string.')] };
    }
    let document: DocumentNode;
    try {
      document = parse(payload.query, { maxTokens: this.o.limits.maxQueryTokens });
    } catch (err) {
      const e = err as GraphQLError;
      return { errors: [new GraphQLErrorClass(e.message, { nodes: e.nodes, source: e.source, positions: e.positions, extensions: { code: 'GRAPHQL_PARSE_FAILED' } })] };
    }
    const invalid = validate(this.o.schema, document, [...specifiedRules, ...extraValidationRules]);
    if (invalid.length) {
      return { errors: invalid.map((e) => new GraphQLErrorClass(e.message, { nodes: e.nodes, source: e.source, positions: e.positions, extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } })) };
    }
    const { op } = selectOperation(document, payload.operationName);
    if (!op) {
      return { errors: [apiError('BAD_REQUEST', payload.operationName ? `No operation named "${payload.operationName}".` : 'The document has several operations; name the one to run (operationName).')] };
    }
    const variables = payload.variables ?? {};
    if (typeof variables !== 'object' || Array.isArray(variables)) {
      return { errors: [apiError('BAD_REQUEST', '`variables` must be an object.')] };
    }
    const coerced = getVariableValues(this.o.schema, op.variableDefinitions ?? [], variables, { maxErrors: 10 });
    if (coerced.errors) {
      return { errors: coerced.errors.map((e) => new GraphQLErrorClass(e.message, { nodes: e.nodes, extensions: { code: 'BAD_USER_INPUT' } })) };
    }
    const refused = this.checkOperation(caller, { document, operationName: payload.operationName, variables, transport: 'ws' });
    if (refused.length) return { errors: refused };
    return { args: { schema: this.o.schema, document, operationName: payload.operationName, variableValues: variables } };
  }
}

/** `Bearer <token>` (or a bare token) -> token; null when it is neither. */
export function bearer(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const m = /^\s*(?:Bearer\s+)?(\S+)\s*$/i.exec(value);
  return m ? m[1]! : null;
}

