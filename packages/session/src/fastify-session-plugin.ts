import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Session } from './session.ts';
import { type SessionOptions, sessionMiddleware } from './session-middleware.ts';

/** The little of Fastify's request this plugin touches (structural, so fastify is no runtime dependency). */
export interface FastifyRequestLike {
  raw: IncomingMessage;
}

interface FastifyReplyLike {
  raw: ServerResponse;
}

/** The little of a Fastify instance this plugin uses. */
export interface FastifyInstanceLike {
  decorateRequest(name: string, value: unknown): unknown;
  addHook(name: 'onRequest', hook: (request: FastifyRequestLike, reply: FastifyReplyLike) => Promise<void>): unknown;
  addHook(name: 'onSend', hook: (request: FastifyRequestLike, reply: FastifyReplyLike, payload: unknown) => Promise<unknown>): unknown;
}

const sessions = new WeakMap<object, Session>();

/** The session the plugin loaded for this request. */
export function getSession(request: FastifyRequestLike): Session {
  const session = sessions.get(request);
  if (!session) throw new Error('tiergate session plugin is not registered for this route');
  return session;
}

/**
 * A Fastify plugin: loads the session in onRequest, saves it in onSend (before Fastify writes the
 * headers, so the cookie still gets out and a failed save becomes the error response; TgError's
 * `status` makes Fastify answer 503 when the store is down). Read it with getSession(request).
 * Marked skip-override (what the fastify-plugin package does) so its hooks apply to the whole app.
 */
export function fastifySession(options: SessionOptions): (app: FastifyInstanceLike) => Promise<void> {
  const manager = sessionMiddleware(options);
  const plugin = async (app: FastifyInstanceLike): Promise<void> => {
    app.addHook('onRequest', async (request, reply) => {
      sessions.set(request, await manager.load(request.raw, reply.raw));
    });
    app.addHook('onSend', async (request, _reply, payload) => {
      await sessions.get(request)?.save();
      return payload;
    });
  };
  Object.assign(plugin, {
    [Symbol.for('skip-override')]: true,
    [Symbol.for('fastify.display-name')]: 'tiergate-session',
  });
  return plugin;
}
