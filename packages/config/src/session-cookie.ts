import { isLoopbackAddress } from './address.ts';

/** The little of a loaded tiergate.yaml the rule reads. */
export interface SessionCookieFacts {
  readonly proxy?: { readonly listeners: readonly { readonly address: string; readonly tls?: unknown }[] };
  readonly sessions?: { readonly cookie: { readonly secure?: boolean } };
}

/**
 * Whether the session cookie is `Secure`: `sessions.cookie.secure` when the file sets it; otherwise
 * false only when every listener the clients reach is plain HTTP on loopback, else true. The clients'
 * listeners are `proxy.listeners`; a file without a proxy section means the app is reached directly,
 * on `appHost` (plain HTTP: the app has no TLS). Plain HTTP on loopback is a development stack only
 * this host reaches, where Secure protects nothing and a client that keeps Secure cookies for HTTPS
 * only would lose the session. Anywhere else the cookie is Secure unless the file says otherwise: a
 * plain-HTTP listener there then loses every session (the client does not send the cookie back), which
 * `tiergate validate` warns about and the demo app's login error names.
 */
export function sessionCookieSecure(config: SessionCookieFacts, appHost?: string): boolean {
  const explicit = config.sessions?.cookie.secure;
  if (explicit !== undefined) return explicit;
  const listeners = config.proxy?.listeners ?? (appHost === undefined ? [] : [{ address: appHost, tls: undefined }]);
  const devOnly = listeners.length > 0 && listeners.every((l) => l.tls === undefined && isLoopbackAddress(l.address));
  return !devOnly;
}
