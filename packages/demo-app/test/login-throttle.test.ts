import { describe, expect, it } from 'vitest';
import { LoginThrottle } from '../src/index.ts';

describe('LoginThrottle', () => {
  it('counts failures in a window from the first one, and a success forgives the user but not the address', () => {
    let now = 0;
    const throttle = new LoginThrottle({ perUser: 2, perAddress: 3, windowMs: 1_000, now: () => now });
    throttle.fail('alice', '192.0.2.1');
    expect(throttle.retryAfterMs('alice', '192.0.2.1')).toBe(0);
    now = 400;
    throttle.fail('alice', '192.0.2.1');
    expect(throttle.retryAfterMs('alice', '192.0.2.1')).toBe(600);
    expect(throttle.retryAfterMs('alice', '198.51.100.7')).toBe(600);
    throttle.succeed('alice');
    expect(throttle.retryAfterMs('alice', '198.51.100.7')).toBe(0);
    throttle.fail('bob', '192.0.2.1');
    expect(throttle.retryAfterMs('carol', '192.0.2.1')).toBe(600);
    now = 1_000;
    expect(throttle.retryAfterMs('carol', '192.0.2.1')).toBe(0);
  });

  it('keeps at most maxKeys counters, dropping the oldest first', () => {
    const throttle = new LoginThrottle({ perUser: 1, perAddress: 100, maxKeys: 4, now: () => 0 });
    for (let i = 0; i < 10; i++) throttle.fail(`user-${i}`, '192.0.2.1');
    // The newest user is still throttled; the first ones were evicted to stay within 4 counters.
    expect(throttle.retryAfterMs('user-9', '203.0.113.1')).toBeGreaterThan(0);
    expect(throttle.retryAfterMs('user-0', '203.0.113.1')).toBe(0);
  });
});
