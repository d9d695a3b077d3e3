import type { BoundAddress } from '@tiergate/proxy';

function hostPort(address: string, port: number): string {
  return `${address.includes(':') ? `[${address}]` : address}:${port}`;
}

/** The lines `tiergate proxy` prints on stdout once it serves (scripts and tests wait for them). */
export function announce(listeners: readonly BoundAddress[], admin: { address: string; port: number }, workers: number): void {
  const lines = listeners.map((a) => `listening on ${a.tls ? 'https' : 'http'}://${hostPort(a.address, a.port)}`);
  lines.push(`admin on http://${hostPort(admin.address, admin.port)}`, `workers: ${workers}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** Resolves with the first SIGTERM or SIGINT. */
export function stopSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (signal: string) => () => resolve(signal);
    process.once('SIGTERM', on('SIGTERM'));
    process.once('SIGINT', on('SIGINT'));
  });
}
