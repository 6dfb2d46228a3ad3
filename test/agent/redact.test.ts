// Redaction: a registered value never comes out, plain, inside a longer line, base64 (alone or inside
// a longer base64 text), or line by line; short values are left alone on purpose.
import { describe, expect, it } from 'vitest';
import { MIN_REDACTED_LENGTH, REDACTED, Redactor } from '../../agent/redact.ts';

describe('Redactor', () => {
  const value = 'correct-horse-battery';
  const r = new Redactor();
  r.add(Buffer.from(value));

  it('redacts the value alone and inside a longer line', () => {
    expect(r.redact(value)).toBe(REDACTED);
    expect(r.redact(`FATAL: password authentication failed: ${value}; retrying`)).toBe(`FATAL: password authentication failed: ${REDACTED}; retrying`);
    expect(r.redact(`${value}${value}`)).toBe(`${REDACTED}${REDACTED}`);
  });

  it('redacts its base64, alone, unpadded, URL-safe, and at every alignment inside longer base64', () => {
    const b64 = Buffer.from(value).toString('base64');
    expect(r.redact(`token=${b64}`)).toBe(`token=${REDACTED}`);
    expect(r.redact(b64.replace(/=+$/, ''))).toBe(REDACTED);
    for (const prefix of ['', 'a', 'ab', 'abc', 'user:']) {
      const blob = Buffer.from(`${prefix}${value} and more`).toString('base64');
      const out = r.redact(blob);
      expect(out, `prefix '${prefix}'`).toContain(REDACTED);
      // What is left cannot be decoded back to the value.
      expect(Buffer.from(out.replace(REDACTED, ''), 'base64').toString('latin1')).not.toContain(value);
    }
  });

  it('redacts inside JSON values (keys and strings) and through a logger', () => {
    expect(r.redactJson({ message: `got ${value}`, list: [value, 1], [value]: true })).toEqual({
      message: `got ${REDACTED}`,
      list: [REDACTED, 1],
      [REDACTED]: true,
    });
    const lines: string[] = [];
    const log = r.logger({
      debug: () => {},
      info: (m, d) => lines.push(`${m} ${JSON.stringify(d)}`),
      warn: () => {},
      error: () => {},
    });
    log.info(`step with ${value}`, { error: `bad ${value}` });
    expect(lines).toEqual([`step with ${REDACTED} {"error":"bad ${REDACTED}"}`]);
  });

  it('each line of a multi-line value is redacted on its own', () => {
    const pem = '-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX\n-----END KEY-----\n';
    const p = new Redactor();
    p.add(pem);
    expect(p.redact('container log: MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX')).toBe(`container log: ${REDACTED}`);
  });

  it(`values shorter than ${MIN_REDACTED_LENGTH} characters are not matched (they would shred ordinary text)`, () => {
    const s = new Redactor();
    s.add('on');
    expect(s.size).toBe(0);
    expect(s.redact('Connection done')).toBe('Connection done');
    s.add('1234');
    expect(s.redact('pin 1234')).toBe(`pin ${REDACTED}`);
  });
});
