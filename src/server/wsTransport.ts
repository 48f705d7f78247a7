/**
 * graphql-ws transport adapter for `ws` (the protocol itself is graphql-ws's `makeServer`).
 *
 * Unlike graphql-ws's bundled `use/ws`, `send` does not wait for the kernel to take each frame: waiting costs
 * every frame a trip through the event loop, and the event loop is regularly busy with a denoising step, so
 * preview frames queued behind one another would each wait a step. Backpressure is handled one level up instead:
 * the pub/sub holds delivery while the socket's `bufferedAmount` is over the high-water mark and keeps only the
 * newest preview (latest frame wins). Errors go to the structured log, not the console.
 */
import type http from 'node:http';
import type { WebSocketServer, WebSocket } from 'ws';
import { CloseCode, handleProtocols, makeServer, type ServerOptions } from 'graphql-ws';
import type { Caller } from '../graphql/index.js';
import { partLogger } from '../log/index.js';

const log = partLogger('server');

/** What every connection carries into graphql-ws callbacks (`ctx.extra`). */
export type SocketExtra = {
  socket: WebSocket;
  request: http.IncomingMessage;
  /** Set by onConnect once the connection's token is admitted. */
  caller?: Caller;
};

export interface WsTransport {
  /** Close every connection with 1001 Going Away and stop the WebSocket server. */
  dispose(): Promise<void>;
}

/** Message types of the protocol that only the server sends. */
const SERVER_ONLY = new Set(['connection_ack', 'next', 'error']);

/** The `type` of a JSON message, or null when it has none (graphql-ws reports malformed messages itself). */
function messageType(text: string): string | null {
  try {
    const m: unknown = JSON.parse(text);
    return m !== null && typeof m === 'object' && typeof (m as { type?: unknown }).type === 'string' ? (m as { type: string }).type : null;
  } catch {
    return null;
  }
}

/** Serve the graphql-transport-ws protocol on `wss`, pinging idle clients every `keepAliveMs`. */
export function serveGraphqlWs(
  options: ServerOptions<Record<string, unknown>, SocketExtra>,
  wss: WebSocketServer,
  keepAliveMs = 12_000,
): WsTransport {
  const server = makeServer(options);
  wss.options.handleProtocols = handleProtocols;
  wss.on('error', (err) => log.error({ err }, 'WebSocket server error'));

  wss.on('connection', (socket, request) => {
    // ws closes the socket itself for protocol violations (e.g. 1009 for a message over maxPayload).
    socket.on('error', (err) => log.warn({ err: err.message }, 'WebSocket error'));

    let pongWait: NodeJS.Timeout | null = null;
    const ping = setInterval(() => {
      if (socket.readyState !== socket.OPEN) return;
      pongWait = setTimeout(() => socket.terminate(), keepAliveMs);
      socket.once('pong', () => {
        if (pongWait) clearTimeout(pongWait);
        pongWait = null;
      });
      socket.ping();
    }, keepAliveMs);

    const closed = server.opened(
      {
        protocol: socket.protocol,
        send: (data) => {
          if (socket.readyState === socket.OPEN) socket.send(data);
        },
        close: (code, reason) => socket.close(code, reason),
        onMessage: (cb) =>
          socket.on('message', async (data) => {
            const text = String(data);
            // Messages only a server sends are the client's protocol error (4400), not a server failure: graphql-ws
            // throws on them, which would close the socket with 4500.
            const type = messageType(text);
            if (type !== null && SERVER_ONLY.has(type)) {
              socket.close(CloseCode.BadRequest, `Unexpected message of type ${type} from a client`);
              return;
            }
            try {
              await cb(text);
            } catch (err) {
              log.error({ err }, 'graphql-ws message handling failed');
              socket.close(CloseCode.InternalServerError, 'Internal server error');
            }
          }),
      },
      { socket, request },
    );

    socket.once('close', (code, reason) => {
      clearInterval(ping);
      if (pongWait) clearTimeout(pongWait);
      void closed(code, String(reason));
    });
  });

  return {
    async dispose() {
      for (const client of wss.clients) client.close(1001, 'Going away');
      wss.removeAllListeners();
      await new Promise<void>((resolve, reject) => wss.close((err) => (err ? reject(err) : resolve())));
    },
  };
}
