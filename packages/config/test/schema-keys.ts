import type { z } from 'zod';

interface Def {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  valueType?: z.ZodType;
  options?: z.ZodType[];
}

/**
 * Every key path a zod schema defines, as the reference documents them: `a.b`, `list[].key`,
 * `record.<name>.key`. Wrappers (optional, default, prefault, pipe) are transparent; the options of
 * a (discriminated) union contribute their keys to the same path.
 */
export function schemaKeys(schema: z.ZodType, path = '', out = new Set<string>()): Set<string> {
  const def = (schema as unknown as { _zod: { def: Def } })._zod.def;
  const inner = def.innerType ?? def.in;
  if (inner) return schemaKeys(inner, path, out);
  if (def.type === 'object') {
    for (const [key, value] of Object.entries(def.shape ?? {})) {
      const p = path ? `${path}.${key}` : key;
      out.add(p);
      schemaKeys(value, p, out);
    }
  } else if (def.type === 'array' && def.element) schemaKeys(def.element, `${path}[]`, out);
  else if (def.type === 'record' && def.valueType) schemaKeys(def.valueType, `${path}.<name>`, out);
  else if (def.type === 'union') for (const option of def.options ?? []) schemaKeys(option, path, out);
  return out;
}
