import { expect } from 'chai';
import { Writable } from 'node:stream';
import { createLogger } from '../../core/index.js';

function capture(): { lines: Record<string, unknown>[]; destination: Writable } {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { lines, destination };
}

describe('core/logger', () => {
  it('writes JSON lines at the level asked', () => {
    const { lines, destination } = capture();
    const log = createLogger({ level: 'warn', destination });
    log.info('hidden');
    log.warn({ server: 'everything' }, 'restarting');
    expect(lines).to.have.length(1);
    expect(lines[0]).to.include({ level: 40, server: 'everything', msg: 'restarting' });
  });

  it('redacts authorization headers, tokens, secrets, codes, verifiers and env', () => {
    const { lines, destination } = capture();
    const log = createLogger({ level: 'info', destination });
    log.info(
      {
        headers: { authorization: 'Bearer sekrit-1' },
        req: { headers: { authorization: 'Bearer sekrit-2', cookie: 'sid=sekrit-3' } },
        token: 'sekrit-4',
        access_token: 'sekrit-5',
        upstream: { refresh_token: 'sekrit-6', code_verifier: 'sekrit-7', client_secret: 'sekrit-8' },
        code: 'sekrit-9',
        env: { GITHUB_TOKEN: 'sekrit-10' },
        token_data: { access_token: 'sekrit-11' },
        server: 'gmail',
      },
      'login',
    );
    const text = JSON.stringify(lines);
    expect(text).to.not.match(/sekrit/);
    expect(lines[0]).to.include({ server: 'gmail', token: '[redacted]', code: '[redacted]' });
  });
});
