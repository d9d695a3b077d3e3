import pino, { type Logger } from 'pino';

/** The CLI's one logger: JSON lines on stderr (stdout stays for command output). */
export function createLogger(level: string, name: string): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ dest: 2, sync: false }));
}
