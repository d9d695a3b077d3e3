import { TgError } from '@tiergate/errors';

/** The request values a hash key template may read; the proxy implements it per request. */
export interface KeyVars {
  /**
   * nginx `$uri`: the path without the query, `%XX` decoded, `//` merged, `.` and `..` resolved (nginx's
   * ngx_http_parse_complex_uri with merge_slashes on; the proxy's `nginxUri`, checked against a real nginx).
   */
  readonly uri: string;
  /** Original path and query as received (nginx `$request_uri`). */
  readonly requestUri: string;
  /** Client address (nginx `$remote_addr`, after trusted-proxy processing). */
  readonly remoteAddr: string;
  /** Host without port (nginx `$host`). */
  readonly host: string;
  /** A request header by lowercase name (`$http_x_user` asks for `x-user`). */
  header(name: string): string | undefined;
  /** A cookie by name. */
  cookie(name: string): string | undefined;
  /** A query argument by name. */
  arg(name: string): string | undefined;
}

export type KeyFunction = (vars: KeyVars) => string;
type Part = string | KeyFunction;

const FIXED: Record<string, KeyFunction> = {
  uri: (v) => v.uri,
  request_uri: (v) => v.requestUri,
  remote_addr: (v) => v.remoteAddr,
  host: (v) => v.host,
};

const PREFIXED: readonly [string, (name: string) => KeyFunction][] = [
  // nginx maps $http_x_forwarded_for to the header x-forwarded-for
  ['http_', (name) => (v) => v.header(name.toLowerCase().replaceAll('_', '-')) ?? ''],
  ['cookie_', (name) => (v) => v.cookie(name) ?? ''],
  ['arg_', (name) => (v) => v.arg(name) ?? ''],
];

function invalid(template: string, message: string): TgError {
  return new TgError('TG_CONFIG_INVALID', `hash key "${template}": ${message}`, { details: { template } });
}

function variable(template: string, name: string): KeyFunction {
  const fixed = FIXED[name];
  if (fixed) return fixed;
  for (const [prefix, make] of PREFIXED) {
    if (name.startsWith(prefix) && name.length > prefix.length) return make(name.slice(prefix.length));
  }
  const known = [...Object.keys(FIXED), ...PREFIXED.map(([p]) => `${p}<name>`)].map((n) => `$${n}`).join(', ');
  return invalidVariable(template, name, known);
}

function invalidVariable(template: string, name: string, known: string): never {
  throw invalid(template, `unknown variable $${name} (known: ${known})`);
}

const NAME = /[A-Za-z0-9_]/;

/** Splits a template into literal text and variable readers (`$name` or `${name}`, as nginx). */
function parse(template: string): Part[] {
  const parts: Part[] = [];
  let literal = '';
  let p = 0;
  while (p < template.length) {
    const c = template[p]!;
    if (c !== '$') {
      literal += c;
      p++;
      continue;
    }
    let name: string;
    if (template[p + 1] === '{') {
      const close = template.indexOf('}', p + 2);
      if (close < 0) throw invalid(template, `missing "}" after position ${p}`);
      name = template.slice(p + 2, close);
      p = close + 1;
    } else {
      let q = p + 1;
      while (q < template.length && NAME.test(template[q]!)) q++;
      name = template.slice(p + 1, q);
      p = q;
    }
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw invalid(template, `invalid variable name "$${name}"`);
    if (literal) parts.push(literal);
    literal = '';
    parts.push(variable(template, name));
  }
  if (literal) parts.push(literal);
  return parts;
}

/**
 * Compiles an nginx-style hash key template (`$request_uri`, `$remote_addr`, `$uri`, `$host`,
 * `$http_<name>`, `$cookie_<name>`, `$arg_<name>`, literal text, concatenations; `${name}` to
 * delimit) into a function evaluating it for one request. Missing headers, cookies and arguments
 * read as ''. Throws TgError TG_CONFIG_INVALID for an unknown or malformed variable, so a bad key
 * fails at config load rather than per request.
 */
export function compileKeyTemplate(template: string): KeyFunction {
  const parts = parse(template);
  if (parts.length === 0) return () => '';
  if (parts.length === 1) {
    const only = parts[0]!;
    return typeof only === 'string' ? () => only : only;
  }
  return (vars) => {
    let out = '';
    for (const part of parts) out += typeof part === 'string' ? part : part(vars);
    return out;
  };
}
