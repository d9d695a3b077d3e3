import { KNOWN_DEMO_SECRETS } from '@tiergate/config';
import { describe, expect, it } from 'vitest';
import { DEMO_SECRET } from '../src/index.ts';

describe('DEMO_SECRET', () => {
  it('is one of the published secrets `tiergate validate` warns about beyond loopback', () => {
    expect(KNOWN_DEMO_SECRETS.has(DEMO_SECRET)).toBe(true);
  });
});
