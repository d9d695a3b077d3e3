import { ALGORITHMS, BALANCERS, compileKeyTemplate } from '@tiergate/balancer';
import { ALGORITHM_NAMES, parseConfig } from '@tiergate/config';
import { isTgError } from '@tiergate/errors';
import { describe, expect, it } from 'vitest';

/**
 * The config schema and the balancer registry are separate packages (balancer imports config, so
 * config cannot import balancer): this cross-package test keeps the names they share in step.
 */
describe('config ↔ balancer', () => {
  it('ALGORITHM_NAMES (config) equals ALGORITHMS and the registry keys (balancer)', () => {
    expect([...ALGORITHM_NAMES]).toEqual([...ALGORITHMS]);
    expect(Object.keys(BALANCERS).sort()).toEqual([...ALGORITHM_NAMES].sort());
  });

  it('every algorithm name validates in a pool', () => {
    for (const algorithm of ALGORITHM_NAMES) {
      const hashKey = algorithm === 'hash' ? '\n      hash_key: $request_uri' : '';
      const text = `version: 1\nproxy:\n  listeners: [{ port: 0 }]\n  pools:\n    p:\n      algorithm: ${algorithm}${hashKey}\n      servers: [{ address: '127.0.0.1:1' }]\n`;
      expect(parseConfig(text).proxy?.pools.p?.algorithm).toBe(algorithm);
    }
  });

  // A hash_key the config accepts must compile in the balancer, and one it rejects must not:
  // otherwise a file would pass `tiergate validate` and then fail when the proxy starts.
  const TEMPLATES = [
    '$request_uri',
    '$uri',
    '$remote_addr',
    '$host',
    '$http_x_user',
    '$cookie_session',
    '$arg_id',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: nginx's ${name} syntax, not a JS template
    '${uri}-suffix',
    'prefix-$host$uri',
    '$cookie_user$arg_id',
    'constant',
    '$args',
    '$scheme',
    '$request_url',
    '$http_',
    '$',
    '${uri',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: an empty nginx ${name}, on purpose
    '${}',
    '$1abc',
  ];
  it.each(TEMPLATES)('hash_key %j: config and balancer agree', (template) => {
    const text = `version: 1\nproxy:\n  listeners: [{ port: 0 }]\n  pools:\n    p:\n      algorithm: hash\n      hash_key: ${JSON.stringify(template)}\n      servers: [{ address: '127.0.0.1:1' }]\n`;
    const accepts = (fn: () => unknown): boolean => {
      try {
        fn();
        return true;
      } catch (err) {
        if (isTgError(err, 'TG_CONFIG_INVALID')) return false;
        throw err;
      }
    };
    expect(
      accepts(() => parseConfig(text)),
      'config',
    ).toBe(accepts(() => compileKeyTemplate(template)));
  });
});
