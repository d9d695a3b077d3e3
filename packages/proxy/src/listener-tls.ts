import { readFileSync } from 'node:fs';
import type { TlsOptions } from 'node:tls';
import type { DeepReadonly, ListenerConfig } from '@tiergate/config';

/**
 * The TLS options of a listener with `tls`: its certificate chain and key, read from their files now (a reload
 * calls it again to pick up renewed files). Throws the fs error when a file cannot be read.
 */
export function listenerTlsOptions(listener: DeepReadonly<ListenerConfig>): TlsOptions {
  const tls = listener.tls;
  if (!tls) return {};
  return { cert: readFileSync(tls.cert), key: readFileSync(tls.key) };
}
