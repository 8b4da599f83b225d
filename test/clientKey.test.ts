import { describe, expect, it } from 'vitest';
import { clientKey } from '../src/ops/AdmissionControl.js';

/**
 * MAX_RECEIVING_PER_CLIENT counts a client by this key (AdmissionControl.receiving; test/slowBodies goes
 * through real sockets, which on this machine can only come from loopback): an IPv6 host holds a /64 and
 * may send from any address in it, so its addresses share one cap.
 */
describe('the client a request body is counted against', () => {
  it('is an IPv4 address itself, also when IPv4-mapped', () => {
    expect(clientKey('203.0.113.9')).toBe('203.0.113.9');
    expect(clientKey('::ffff:203.0.113.9')).toBe('203.0.113.9');
    expect(clientKey('::FFFF:203.0.113.9')).toBe('203.0.113.9');
  });

  it('is the /64 of an IPv6 address, however it is written', () => {
    const key = '2001:db8:1:2::/64';
    for (const address of ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::9', '2001:0DB8:0001:0002:ffff::1', '2001:db8:1:2::']) {
      expect(clientKey(address)).toBe(key);
    }
    expect(clientKey('2001:db8:1:3::9')).not.toBe(key);
    expect(clientKey('1::2:3:4:5:6:7')).toBe('1:0:2:3::/64');
    expect(clientKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
  });

  it('is the address as given when it is not an IP address', () => {
    expect(clientKey('')).toBe('');
    expect(clientKey('/run/chronograph.sock')).toBe('/run/chronograph.sock');
  });
});
