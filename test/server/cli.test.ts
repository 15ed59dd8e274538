import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { parseCliOrExit, type CliIo } from '../../src/server/cli.js';

class Exit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

/** Records output and turns exit into a thrown Exit. */
function fakeIo(): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    writeOut: (text) => out.push(text),
    writeErr: (text) => err.push(text),
    exit: (code) => {
      throw new Exit(code);
    },
  };
}

function runCli(argv: string[], io: CliIo): number | undefined {
  try {
    parseCliOrExit(argv, {}, io);
    return undefined;
  } catch (err) {
    if (err instanceof Exit) return err.code;
    throw err;
  }
}

describe('parseCliOrExit', () => {
  it('returns the config for a valid command line', () => {
    const io = fakeIo();
    const config = parseCliOrExit(['-port', '8081', '--no-tls'], {}, io);
    assert.equal(config.port, 8081);
    assert.equal(config.tls, false);
    assert.deepEqual(io.out, []);
    assert.deepEqual(io.err, []);
  });

  it('prints one line naming the flag on stderr and exits 2 for a bad flag', () => {
    const io = fakeIo();
    assert.equal(runCli(['--period', 'soon'], io), 2);
    assert.deepEqual(io.out, []);
    assert.equal(io.err.length, 1);
    const line = io.err[0] ?? '';
    assert.ok(line.startsWith('miniqueue: '));
    assert.ok(line.endsWith('\n'));
    assert.equal(line.split('\n').length, 2, 'exactly one line');
    assert.ok(line.includes('--period'));
  });

  it('prints help on stdout and exits 0', () => {
    const io = fakeIo();
    assert.equal(runCli(['--help'], io), 0);
    assert.ok((io.out[0] ?? '').includes('--max-message-bytes'));
    assert.deepEqual(io.err, []);
  });

  it('prints the version on stdout and exits 0', () => {
    const io = fakeIo();
    assert.equal(runCli(['--version'], io), 0);
    assert.equal(io.out.length, 1);
    assert.ok((io.out[0] ?? '').endsWith('\n'));
  });

  it('exits the real process with code 2 and one stderr line', () => {
    const cli = new URL('../../src/server/cli.js', import.meta.url).href;
    const script = `import { parseCliOrExit } from ${JSON.stringify(cli)}; parseCliOrExit(process.argv.slice(1), {}); process.stdout.write('unreachable');`;
    const bad = spawnSync(process.execPath, ['--input-type=module', '-e', script, '--', '-port', 'abc'], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.equal(bad.stdout, '');
    assert.match(bad.stderr, /^miniqueue: [^\n]*--port[^\n]*\n$/);

    const help = spawnSync(process.execPath, ['--input-type=module', '-e', script, '--', '-help'], { encoding: 'utf8' });
    assert.equal(help.status, 0);
    assert.ok(help.stdout.includes('--redis-port'));
    assert.equal(help.stderr, '');
  });
});
