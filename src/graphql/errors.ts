/**
 * Every error that reaches a client carries a stable `extensions.code` and a message a person can act on.
 * Domain errors keep their code; errors graphql or Apollo raise about the request itself (no resolver involved)
 * are the client's: BAD_REQUEST unless they carry a code; anything unexpected is logged and masked as
 * INTERNAL_SERVER_ERROR. No stack traces, no file paths.
 */
import type { GraphQLError as GraphQLErrorType, GraphQLFormattedError } from 'graphql';
import { graphql } from './graphqlRuntime.js';
import { HeaderMap } from '@apollo/server';
import { unwrapResolverError } from '@apollo/server/errors';
import { DomainError } from '../sessions/index.js';
import { partLogger } from '../log/index.js';

const log = partLogger('graphql');

// The process-wide graphql runtime (see graphqlRuntime.ts): graphql-ws checks `instanceof GraphQLError`.
const { GraphQLError } = graphql;
type GraphQLError = GraphQLErrorType;

/** Error codes of the API (see schema.graphql). */
export type ErrorCode =
  | DomainError['code']
  | 'QUERY_TOO_DEEP'
  | 'QUERY_TOO_COMPLEX'
  | 'TOO_MANY_ROOT_FIELDS'
  | 'RESPONSE_TOO_LARGE'
  | 'GRAPHQL_PARSE_FAILED'
  | 'GRAPHQL_VALIDATION_FAILED'
  | 'BAD_REQUEST'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'PAYLOAD_TOO_LARGE'
  | 'INTERNAL_SERVER_ERROR';

/** HTTP status of a request refused with this code (operations that ran answer 200 with their errors). */
export const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  RATE_LIMITED: 429,
  QUERY_TOO_DEEP: 400,
  QUERY_TOO_COMPLEX: 400,
  TOO_MANY_ROOT_FIELDS: 400,
  RESPONSE_TOO_LARGE: 413,
  GRAPHQL_PARSE_FAILED: 400,
  GRAPHQL_VALIDATION_FAILED: 400,
  BAD_REQUEST: 400,
  BAD_USER_INPUT: 400,
  UNSUPPORTED_MEDIA_TYPE: 415,
  PAYLOAD_TOO_LARGE: 413,
  INVALID_STATE: 503,
  INTERNAL_SERVER_ERROR: 500,
};

/** Seconds for a Retry-After header (at least 1). */
export function retryAfterSeconds(retryAfterMs: number): number {
  return Math.max(1, Math.ceil(retryAfterMs / 1000));
}

/**
 * A GraphQL error with a code, and the HTTP head Apollo answers with when it aborts a request with it (status;
 * `Retry-After` for RATE_LIMITED). Only errors that refuse a whole request are made here; `formatError` strips
 * the head from what the client sees.
 */
export function apiError(code: ErrorCode, message: string, details: Record<string, unknown> = {}): GraphQLError {
  const status = HTTP_STATUS[code];
  const headers = new HeaderMap();
  if (code === 'RATE_LIMITED' && typeof details.retryAfterMs === 'number') {
    headers.set('retry-after', String(retryAfterSeconds(details.retryAfterMs)));
  }
  return new GraphQLError(message, { extensions: { code, ...details, ...(status ? { http: { status, headers } } : {}) } });
}

/** The one body shape of a refused request outside GraphQL execution (body parser, image route, 404). */
export function errorBody(code: ErrorCode, message: string, details: Record<string, unknown> = {}): { errors: GraphQLFormattedError[] } {
  return { errors: [{ message, extensions: { code, ...details } }] };
}

/** Turn whatever a resolver threw into what the client sees. */
export function formatError(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError {
  const original = unwrapResolverError(error);
  if (original instanceof DomainError) {
    return { ...formatted, message: original.message, extensions: { ...original.details, code: original.code } };
  }
  const code = formatted.extensions?.code;
  if (code && code !== 'INTERNAL_SERVER_ERROR') {
    const { http: _http, stacktrace: _st, ...rest } = formatted.extensions ?? {};
    return { ...formatted, extensions: rest };
  }
  // Raised by graphql or Apollo about the request itself (e.g. an APQ hash that does not match the query): no
  // resolver ran, nothing was thrown, so it is the client's to fix.
  if (error instanceof GraphQLError && !error.originalError && !formatted.path) {
    return { message: formatted.message, ...(formatted.locations ? { locations: formatted.locations } : {}), extensions: { code: 'BAD_REQUEST' } };
  }
  log.error({ err: original }, 'internal error');
  return { message: 'Internal server error.', path: formatted.path, locations: formatted.locations, extensions: { code: 'INTERNAL_SERVER_ERROR' } };
}

/** The same mapping for graphql-ws results. */
export function formatErrors(errors: readonly GraphQLError[]): GraphQLFormattedError[] {
  return errors.map((e) => formatError(e.toJSON(), e));
}
