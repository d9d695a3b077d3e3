import { readFile } from 'node:fs/promises';
import { TgError } from '@tiergate/errors';
import { type Document, isMap, isNode, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument, visit } from 'yaml';
import type { z } from 'zod';
import { checkRules } from './rules.ts';
import { type TiergateConfig, tiergateConfigSchema } from './schema.ts';
import { configWarnings } from './warnings.ts';

/** One problem in a configuration file. */
export interface ConfigIssue {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** `virtual_services[0].real_servers[2].weight`; '' for the whole document. */
  readonly path: string;
  readonly message: string;
}

/** A valid configuration and what `tiergate validate` warns about in it (./warnings.ts), located in the file. */
export interface CheckedConfig {
  readonly config: Config;
  readonly warnings: readonly ConfigIssue[];
}

/** A validated configuration: deeply frozen, with every default applied. */
export type Config = DeepReadonly<TiergateConfig>;
export type DeepReadonly<T> = T extends (infer E)[]
  ? readonly DeepReadonly<E>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

const schema = tiergateConfigSchema.superRefine(checkRules);

/** Reads and validates a tiergate.yaml. Throws TgError TG_CONFIG_UNREADABLE / TG_CONFIG_PARSE / TG_CONFIG_INVALID. */
export async function loadConfigFile(file: string): Promise<Config> {
  return parseConfig(await readConfigText(file), file);
}

/** loadConfigFile, and the file's warnings (probable mistakes that are valid), each at its line and column. */
export async function loadConfigFileWithWarnings(file: string): Promise<CheckedConfig> {
  return parseConfigWithWarnings(await readConfigText(file), file);
}

async function readConfigText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (cause) {
    throw new TgError('TG_CONFIG_UNREADABLE', `${file}: cannot read: ${(cause as Error).message}`, { cause });
  }
}

/**
 * Validates configuration text. Every problem is reported at once, as
 * `file:line:column: path: message`, in `err.details.issues` and in the message.
 */
export function parseConfig(text: string, file = '<config>'): Config {
  return parse(text, file).config;
}

/** parseConfig, and the warnings of the valid file (`file:line:column: path: warning: message` with formatWarning). */
export function parseConfigWithWarnings(text: string, file = '<config>'): CheckedConfig {
  const { config, doc, lines } = parse(text, file);
  const warnings = configWarnings(config).map(({ path, message }) => ({
    file,
    ...position(doc.contents, path, lines, false),
    path: formatPath(path),
    message,
  }));
  warnings.sort((a, b) => a.line - b.line || a.column - b.column);
  return { config, warnings };
}

function parse(text: string, file: string): { config: Config; doc: Document; lines: LineCounter } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const issues = doc.errors.map((e) => {
      const pos = lines.linePos(e.pos[0]);
      return { file, line: pos.line, column: pos.col, path: '', message: e.message.split('\n')[0] as string };
    });
    throw invalid('TG_CONFIG_PARSE', file, issues);
  }
  const result = schema.safeParse(doc.toJS({ maxAliasCount: 100 }) ?? {});
  if (!result.success) {
    const issues = result.error.issues.flatMap((issue) => toIssues(issue, doc.contents, lines, file));
    issues.sort((a, b) => a.line - b.line || a.column - b.column);
    throw invalid('TG_CONFIG_INVALID', file, issues);
  }
  const config = deepFreeze(result.data) as Config;
  recordSourceTexts(doc, text, config);
  return { config, doc, lines };
}

/**
 * The YAML text each virtual service of a parsed file was read from, by the parsed (frozen) service object. A
 * service's value depends on its own text only (its schema reads nothing else in the file), so two services with
 * the same text are equal, and a director reload tells the services a file kept from the ones it changed with one
 * string comparison each instead of comparing every field of every real server (docs/director.md). Not recorded
 * for a file with any alias (`*name`, `<<: *name`) or a %TAG directive: the same text could then mean another value.
 */
const sourceTexts = new WeakMap<object, string>();

/** The YAML text `service` (a virtual service of a config from parseConfig) was read from, when recorded. */
export function virtualServiceSourceText(service: object): string | undefined {
  return sourceTexts.get(service);
}

function recordSourceTexts(doc: Document, text: string, config: Config): void {
  const items = doc.get('virtual_services', true);
  // A %TAG directive gives tag handles a meaning declared outside the service's text.
  if (!isSeq(items) || items.items.length !== config.virtual_services.length || text.includes('%TAG')) return;
  // An alias is written with `*`: a file without one has none, and its tree need not be walked.
  let aliases = false;
  if (text.includes('*'))
    visit(doc, {
      Alias: () => {
        aliases = true;
        return visit.BREAK;
      },
    });
  if (aliases) return;
  for (let i = 0; i < items.items.length; i++) {
    const node = items.items[i];
    const range = isNode(node) ? node.range : undefined;
    if (range) sourceTexts.set(config.virtual_services[i] as object, text.slice(range[0], range[1]));
  }
}

/** Validates an in-memory object (e.g. a topology built by code) the same way. */
export function validateConfig(value: unknown, label = '<object>'): Config {
  const result = schema.safeParse(value);
  if (!result.success) {
    const issues = result.error.issues.flatMap((issue) => toIssues(issue, null, new LineCounter(), label));
    throw invalid('TG_CONFIG_INVALID', label, issues);
  }
  return deepFreeze(result.data) as Config;
}

function invalid(code: 'TG_CONFIG_PARSE' | 'TG_CONFIG_INVALID', file: string, issues: ConfigIssue[]): TgError {
  const what = code === 'TG_CONFIG_PARSE' ? 'is not valid YAML' : 'is invalid';
  const lines = issues.map(formatIssue);
  return new TgError(code, `${file} ${what} (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n  ${lines.join('\n  ')}`, {
    details: { issues },
  });
}

export function formatIssue(i: ConfigIssue): string {
  return `${i.file}:${i.line}:${i.column}: ${i.path ? `${i.path}: ` : ''}${i.message}`;
}

/** A warning as `tiergate validate` prints it: `file:line:column: path: warning: message`. */
export function formatWarning(i: ConfigIssue): string {
  return `${i.file}:${i.line}:${i.column}: ${i.path ? `${i.path}: ` : ''}warning: ${i.message}`;
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out;
}

function toIssues(issue: z.core.$ZodIssue, root: unknown, lines: LineCounter, file: string): ConfigIssue[] {
  const path = issue.path as PropertyKey[];
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => {
      const pos = position(root, [...path, key], lines, true);
      return { file, ...pos, path: formatPath([...path, key]), message: `unknown key '${key}'` };
    });
  }
  // A bad record key (a pool name) is reported at the key, not at the pool under it.
  const pos = position(root, path, lines, issue.code === 'invalid_key');
  return [{ file, ...pos, path: formatPath(path), message: describe(issue, valueAt(root, path)) }];
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  // The document itself (path []): without this a scalar or list document read as "required".
  if (path.length === 0) return isScalar(root) ? root.value : (root ?? undefined);
  if (!isNode(root) || !('getIn' in root) || typeof root.getIn !== 'function') return undefined;
  const v = (root as { getIn(p: readonly unknown[]): unknown }).getIn(path);
  return isScalar(v) ? v.value : v;
}

function describe(issue: z.core.$ZodIssue, value: unknown): string {
  if (issue.code === 'invalid_type' && issue.input === undefined && value === undefined) return 'required';
  if (issue.code === 'invalid_value') {
    if (value === undefined && issue.input === undefined)
      return `required: expected ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    const got = value === undefined ? '' : `${JSON.stringify(value)} is not allowed: `;
    return `${got}expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
  }
  if (issue.code === 'invalid_union' && 'note' in issue && issue.note === 'No matching discriminator')
    return value === undefined ? 'required' : `unknown ${String(issue.discriminator ?? 'type')} ${JSON.stringify(value)}`;
  if (issue.code === 'invalid_key') return `invalid key: ${issue.issues[0]?.message ?? issue.message}`;
  return issue.message;
}

/**
 * The line and column of the node at `path` (its key when `atKey`), or of its nearest
 * existing ancestor when the value is missing (a required key is reported where it belongs).
 */
function position(root: unknown, path: readonly PropertyKey[], lines: LineCounter, atKey: boolean): { line: number; column: number } {
  let node: unknown = root;
  let best: Node | undefined = isNode(root) ? root : undefined;
  for (let i = 0; i < path.length && node; i++) {
    const key = path[i];
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(key));
      if (!pair) break;
      const last = i === path.length - 1;
      if (last && atKey && isPair(pair) && isNode(pair.key)) best = pair.key;
      else if (isNode(pair.value)) best = pair.value;
      else if (isNode(pair.key)) best = pair.key;
      node = pair.value;
    } else if (node && typeof node === 'object' && 'items' in node && Array.isArray((node as { items: unknown[] }).items)) {
      const item = (node as { items: unknown[] }).items[key as number];
      if (!isNode(item)) break;
      best = item;
      node = item;
    } else break;
  }
  const offset = best?.range?.[0];
  if (offset === undefined) return { line: 1, column: 1 };
  const pos = lines.linePos(offset);
  return { line: pos.line, column: pos.col };
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
