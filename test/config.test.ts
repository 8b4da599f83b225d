import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

describe('configuration from the environment', () => {
  it('has working defaults: embedded database under ./data', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ PORT: 4000, HOST: '127.0.0.1', DATA_DIR: './data', DEFAULT_TIMEZONE: 'UTC', PGLITE_OPTIMIZE: true });
    expect(config.DATABASE_URL).toBeUndefined();
  });

  it('treats empty variables as unset', () => {
    expect(loadConfig({ DATABASE_URL: '', PORT: '' }).DATABASE_URL).toBeUndefined();
  });

  it('names every bad variable at once', () => {
    const error = (() => {
      try {
        loadConfig({ PORT: 'eighty', DATABASE_URL: 'mysql://x', LOG_LEVEL: 'loud', DEFAULT_TIMEZONE: 'Mars/Base', PGLITE_OPTIMIZE: 'yes' });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    for (const name of ['PORT', 'DATABASE_URL', 'LOG_LEVEL', 'DEFAULT_TIMEZONE', 'PGLITE_OPTIMIZE']) expect(message).toContain(name);
  });
});

describe('authentication settings', () => {
  const refuse = (env: Record<string, string>) => {
    try {
      loadConfig(env);
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as Error).message;
    }
    throw new Error(`accepted ${JSON.stringify(env)}`);
  };

  it('serves loopback addresses without a credential (development)', () => {
    for (const HOST of ['127.0.0.1', 'localhost', '::1', '[::1]', '127.0.0.2']) expect(loadConfig({ HOST }).HOST).toBe(HOST);
  });

  it('refuses a reachable HOST without a credential, unless AUTH_DISABLED=true says so on purpose', () => {
    const message = refuse({ HOST: '0.0.0.0' });
    expect(message).toContain('HOST: 0.0.0.0 can be reached from other machines');
    expect(message).toContain('ADMIN_API_KEY');
    expect(message).toContain('AUTH_DISABLED=true');
    expect(loadConfig({ HOST: '0.0.0.0', AUTH_DISABLED: 'true' }).AUTH_DISABLED).toBe(true);
    expect(loadConfig({ HOST: '0.0.0.0', ADMIN_API_KEY: 'k'.repeat(32) }).ADMIN_API_KEY).toHaveLength(32);
    expect(loadConfig({ HOST: '10.1.2.3', AUTH_JWKS_URL: 'https://login.example/jwks.json' }).AUTH_JWKS_URL).toBe(
      'https://login.example/jwks.json',
    );
    expect(refuse({ AUTH_DISABLED: 'true', ADMIN_API_KEY: 'k'.repeat(32) })).toContain('AUTH_DISABLED');
  });

  it('checks credentials and claims settings', () => {
    expect(refuse({ ADMIN_API_KEY: 'short' })).toContain('ADMIN_API_KEY');
    expect(refuse({ AUTH_JWT_SECRET: 'too-short' })).toContain('AUTH_JWT_SECRET');
    expect(refuse({ AUTH_JWT_PUBLIC_KEY: 'not a key' })).toContain('AUTH_JWT_PUBLIC_KEY');
    expect(refuse({ AUTH_JWKS_URL: 'ftp://keys.example' })).toContain('AUTH_JWKS_URL');
    expect(loadConfig({})).toMatchObject({ AUTH_JWT_TENANT_CLAIM: 'tenant_id', AUTH_JWT_ROLE_CLAIM: 'role', AUTH_DISABLED: false });
  });
});
