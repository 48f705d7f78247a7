/** Public surface of the server part: start it, and what a running one offers. */
export { startServer, type RunningServer, type ServerOptions } from './server.js';
