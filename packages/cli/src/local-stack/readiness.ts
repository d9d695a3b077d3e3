import { request } from 'node:http';
import { connect, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { TgError } from '@tiergate/errors';
import type { StackChild } from './stack-supervisor.ts';

const POLL_MS = 50;

/** Resolves true when nothing listens on host:port yet (we could bind it ourselves). */
export function portIsFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

/** One GET; true on any 2xx. */
export function httpOk(url: string, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(url, { method: 'GET', timeout: timeoutMs, agent: false }, (res) => {
      res.resume();
      resolve((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300);
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(false));
    req.end();
  });
}

/**
 * One inline PING over a plain socket: any reply but LOADING means the server is up (a NOAUTH
 * error too: the apps authenticate, this probe does not).
 */
export function redisAnswers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    let reply = '';
    const done = (up: boolean) => {
      socket.destroy();
      resolve(up);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      if (reply.includes('\r\n')) done(!reply.startsWith('-LOADING'));
    });
  });
}

/**
 * Polls `probe` until it is true, `child` exits, or `timeoutMs` passes; the last two are
 * TG_STACK_START_FAILED naming the child and quoting its last output.
 */
export async function waitUntilReady(child: StackChild, what: string, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  child.exited.then((e) => {
    exited = e;
  });
  while (Date.now() < deadline) {
    if (exited) break;
    if (await probe()) return;
    await sleep(POLL_MS);
  }
  // Let the output of a child that just died arrive before quoting it.
  if (exited) await sleep(100);
  const why = exited
    ? `exited during start (${exited.signal ?? `exit code ${exited.code}`})`
    : `was not ready within ${Math.round(timeoutMs / 1000)} s (${what})`;
  throw new TgError('TG_STACK_START_FAILED', `${child.name} (pid ${child.pid}) ${why}; its last output:\n${indent(child.tail())}`);
}

function indent(text: string): string {
  return (text.trim() || '(nothing)')
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}
