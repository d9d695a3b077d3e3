import { TgError } from '@tiergate/errors';
import type { SessionFields, SessionPatch } from './session-store.ts';

/** Session data as the application sees it: a JSON-serializable object. */
export type SessionData = Record<string, unknown>;

/** A prototype-less record, so a session key named '__proto__' is an ordinary field. */
export function emptyFields(): SessionFields {
  return Object.create(null) as SessionFields;
}

/** One field per top-level key; keys whose value JSON cannot represent (undefined, functions) are left out. */
export function encodeSession(data: SessionData): SessionFields {
  const fields = emptyFields();
  for (const [key, value] of Object.entries(data)) {
    const json = JSON.stringify(value);
    if (json !== undefined) fields[key] = json;
  }
  return fields;
}

/** Parses stored fields; anything that is not JSON is TG_SESSION_CORRUPT, never a raw SyntaxError. */
export function decodeSession(fields: SessionFields): SessionData {
  const entries: [string, unknown][] = [];
  for (const [key, json] of Object.entries(fields)) {
    try {
      entries.push([key, JSON.parse(json)]);
    } catch (cause) {
      throw new TgError('TG_SESSION_CORRUPT', `session field '${key}' is not valid JSON`, { cause });
    }
  }
  // fromEntries defines own properties, so a stored '__proto__' field cannot change the prototype.
  return Object.fromEntries(entries);
}

/** Bytes the fields take in the store (names plus values, UTF-8). */
export function sizeOfFields(fields: SessionFields): number {
  let size = 0;
  for (const [key, json] of Object.entries(fields)) size += Buffer.byteLength(key) + Buffer.byteLength(json);
  return size;
}

/** Throws TG_SESSION_TOO_LARGE when the fields exceed `maxBytes`. */
export function assertSessionSize(fields: SessionFields, maxBytes: number): void {
  const size = sizeOfFields(fields);
  if (size > maxBytes) {
    throw new TgError('TG_SESSION_TOO_LARGE', `session is ${size} bytes, the limit is ${maxBytes}`, { details: { size, maxBytes } });
  }
}

/** The fields that changed between two snapshots: changed or new ones to set, vanished ones to delete. */
export function diffSession(before: SessionFields, after: SessionFields): SessionPatch {
  const set = emptyFields();
  for (const [key, json] of Object.entries(after)) if (before[key] !== json) set[key] = json;
  const removed = Object.keys(before).filter((key) => !Object.hasOwn(after, key));
  return { set, delete: removed };
}

/** True when applying the patch would change nothing. */
export function isEmptyPatch(patch: SessionPatch): boolean {
  return !patch.replace && patch.delete.length === 0 && Object.keys(patch.set).length === 0;
}
