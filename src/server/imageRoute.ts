/**
 * `GET /images/<id>.png`: the PNG of an image of a session the caller has joined. Stable URL, immutable content
 * (an id never changes its bytes), ETag = its SHA-256. It goes through the same admission as GraphQL operations
 * (identity, then one operation against the caller's quota) and answers refusals in the API's error shape.
 */
import type { Request, RequestHandler, Response } from 'express';
import { graphql, type Admission } from '../graphql/index.js';
import { DomainError, type SessionsService } from '../sessions/index.js';
import { partLogger } from '../log/index.js';
import { sendError, sendGraphQLError } from './httpErrors.js';

const log = partLogger('server');

export function imageRoute(o: { service: SessionsService; admission: Admission }): RequestHandler {
  return async (req: Request, res: Response) => {
    try {
      const caller = await o.admission.identify(req.headers.authorization ?? null, req.socket.remoteAddress);
      o.admission.charge(caller);
      const m = /^([A-Za-z0-9-]{1,64})\.png$/.exec(String(req.params.file));
      if (!m) {
        sendError(res, 'NOT_FOUND', 'Images are at /images/<id>.png.');
        return;
      }
      if (!caller.tokenHash) {
        sendError(res, 'UNAUTHENTICATED', 'Send your bearer token (Authorization: Bearer <token>).');
        return;
      }
      const { png, sha256 } = await o.service.imagePng(caller.tokenHash, m[1]!);
      const etag = `"${sha256}"`;
      res.set({ ETag: etag, 'Cache-Control': 'private, max-age=31536000, immutable', 'Content-Type': 'image/png' });
      if (req.headers['if-none-match'] === etag) {
        res.status(304).end();
        return;
      }
      res.status(200).send(png);
    } catch (err) {
      if (err instanceof graphql.GraphQLError) sendGraphQLError(res, err);
      else if (err instanceof DomainError) sendError(res, err.code, err.message, err.details);
      else {
        log.error({ err }, 'image route failed');
        sendError(res, 'INTERNAL_SERVER_ERROR', 'Internal server error.');
      }
    }
  };
}
