/**
 * HTTP answers outside GraphQL execution in the one error shape of the API (`{ errors: [{ message, extensions:
 * { code } }] }`): body-parser failures (charset, content encoding, corrupt compressed bodies, bad JSON, size),
 * bodies that are not JSON, unknown routes, and anything else an Express handler throws (logged, masked). Express's
 * own error page (HTML with a stack trace and file paths) is never reached.
 */
import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express';
import type { GraphQLError } from 'graphql';
import type { Limits } from '../config/index.js';
import { errorBody, HTTP_STATUS, retryAfterSeconds, type ErrorCode } from '../graphql/index.js';
import { partLogger } from '../log/index.js';

const log = partLogger('server');

/** Answer with a typed error; the status follows the code (Retry-After on RATE_LIMITED). */
export function sendError(res: Response, code: ErrorCode, message: string, details: Record<string, unknown> = {}): void {
  if (code === 'RATE_LIMITED' && typeof details.retryAfterMs === 'number') {
    res.set('Retry-After', String(retryAfterSeconds(details.retryAfterMs)));
  }
  if (code === 'UNAUTHENTICATED') res.set('WWW-Authenticate', 'Bearer');
  res.status(HTTP_STATUS[code] ?? 400).json(errorBody(code, message, details));
}

/** Answer with a GraphQL error the admission path raised (its code, message and details; no HTTP head). */
export function sendGraphQLError(res: Response, err: GraphQLError): void {
  const { code, http: _http, ...details } = err.extensions as { code?: ErrorCode; http?: unknown };
  sendError(res, code ?? 'INTERNAL_SERVER_ERROR', err.message, details);
}

/** What a body-parser (http-errors) failure looks like. */
interface BodyError extends Error {
  type?: string;
  status?: number;
  statusCode?: number;
  code?: string;
  expose?: boolean;
  charset?: string;
}

/** A POST to the GraphQL endpoint whose body was not parsed (not JSON): 415, not Apollo's 500 about middleware. */
export const requireJsonBody: RequestHandler = (req: Request, res: Response, next: NextFunction) => {
  if (req.method === 'POST' && req.body === undefined) {
    sendError(res, 'UNSUPPORTED_MEDIA_TYPE', 'Send the operation as JSON: Content-Type: application/json (UTF-8).');
    return;
  }
  next();
};

/** Unknown paths and methods. */
export const notFound: RequestHandler = (req: Request, res: Response) => {
  sendError(res, 'NOT_FOUND', `Nothing is served at ${req.method} ${req.path.slice(0, 200)}; GraphQL is at /graphql, images at /images/<id>.png.`);
};

/** The last Express error handler. */
export function errorHandler(limits: Limits): ErrorRequestHandler {
  return (err: BodyError, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) {
      next(err);
      return;
    }
    switch (err.type) {
      case 'entity.too.large':
        sendError(res, 'PAYLOAD_TOO_LARGE', `The request body is over ${limits.maxHttpBodyBytes} bytes.`, { limit: limits.maxHttpBodyBytes });
        return;
      case 'charset.unsupported':
        sendError(res, 'UNSUPPORTED_MEDIA_TYPE', `The body must be UTF-8 JSON; charset ${err.charset ?? ''} is not supported.`.replace(' ;', ';'));
        return;
      case 'encoding.unsupported':
        sendError(res, 'UNSUPPORTED_MEDIA_TYPE', 'That Content-Encoding is not supported; send the body as is, or gzip, deflate or br.');
        return;
      case 'entity.parse.failed':
        sendError(res, 'BAD_REQUEST', 'The request body is not valid JSON.');
        return;
      case 'request.aborted':
      case 'request.size.invalid':
        sendError(res, 'BAD_REQUEST', 'The request body ended before its Content-Length.');
        return;
    }
    if (typeof err.code === 'string' && err.code.startsWith('Z_')) {
      sendError(res, 'BAD_REQUEST', 'The request body does not decompress as its Content-Encoding says.');
      return;
    }
    const status = err.status ?? err.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      // Some other client error (e.g. a malformed URL): its status, a fixed message (library messages are not ours).
      res.status(status).json(errorBody(status === 404 ? 'NOT_FOUND' : 'BAD_REQUEST', 'The request is malformed.'));
      return;
    }
    log.error({ err }, 'request failed');
    sendError(res, 'INTERNAL_SERVER_ERROR', 'Internal server error.');
  };
}
