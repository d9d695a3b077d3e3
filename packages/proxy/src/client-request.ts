import { http } from './node-http.ts';

/**
 * The proxy's client request: node's IncomingMessage, except that destroying a request whose body the parser has
 * read in full (`complete`) leaves the client connection open.
 *
 * undici destroys the body stream it was given once it stops writing it, and it stops early when the upstream's
 * answer completes before the stream's `'end'` was emitted (client-h1: the response ends while the request is
 * still being written). node's IncomingMessage takes any destroy before `'end'` for an aborted request and
 * destroys the socket, so the client's keep-alive connection was reset after a complete exchange, and its next
 * request failed with ECONNRESET (0.1–5 % of POSTs under load, found by the k6 session-flow). A request the parser
 * has completed is whole on the wire: the connection is in a clean state between two messages, and node's server
 * discards what was left unread. A destroy with an error, or of a request still arriving, still resets the socket.
 */
export class ClientRequest extends http.IncomingMessage {
  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (err === null && this.complete) {
      process.nextTick(callback, null);
      return;
    }
    super._destroy(err, callback);
  }
}
