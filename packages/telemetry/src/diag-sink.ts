import { DiagLogLevel, diag } from '@opentelemetry/api';

/** Sends the SDK's own warnings and errors (a failed export, a dropped span) to `sink`: the SDK never throws into the app. */
export function installDiagLogger(sink: (level: 'warn' | 'error', message: string) => void): void {
  const ignore = (): void => {};
  const format = (message: string, args: unknown[]): string =>
    [message, ...args.map((a) => (a instanceof Error ? a.message : String(a)))].join(' ');
  diag.setLogger(
    {
      error: (m, ...a) => sink('error', format(m, a)),
      warn: (m, ...a) => sink('warn', format(m, a)),
      info: ignore,
      debug: ignore,
      verbose: ignore,
    },
    DiagLogLevel.WARN,
  );
}
