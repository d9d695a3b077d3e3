import type { IncomingMessage } from 'node:http';

/** A 4xx answer decided while reading the request; the app turns it into a short response. */
export class HttpError extends Error {
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
  }
}

const MAX_BODY_BYTES = 16 * 1024;

/**
 * The request body as a flat object of strings and numbers: JSON objects or
 * application/x-www-form-urlencoded. 413 over 16 KiB, 400 when unparsable, 415 for other types.
 */
export async function readFields(req: IncomingMessage): Promise<Record<string, unknown>> {
  const text = await readText(req);
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'application/json') {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new HttpError(400, 'body is not valid JSON');
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new HttpError(400, 'body must be a JSON object');
    return value as Record<string, unknown>;
  }
  if (type === 'application/x-www-form-urlencoded') return Object.fromEntries(new URLSearchParams(text));
  throw new HttpError(415, 'send application/json or application/x-www-form-urlencoded');
}

async function readText(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, 'body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A required non-empty string field of at most `max` characters, else 400. */
export function stringField(fields: Record<string, unknown>, name: string, max = 200): string {
  const value = fields[name];
  if (typeof value !== 'string' || value.length === 0 || value.length > max) throw new HttpError(400, `'${name}' is required`);
  return value;
}
