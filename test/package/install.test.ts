/**
 * Issue 14 item 2: the package installs into a fresh project. `npm pack` makes a tarball of the
 * built repository; a new project in a temp directory installs it with `npm install <tarball>`;
 * there `npx miniqueue --version` runs, the installed CLI starts a real server, and a TypeScript
 * file importing `miniqueue/client` compiles against the shipped types (with the repository's
 * tsc) and talks to that server.
 *
 * The install must not need the network (CI allows loopback only), and a fresh project would ask
 * the registry for each dependency's metadata, which `npm ci` does not leave in the cache. So the
 * project starts with a package-lock.json listing the repository's own production packages (the
 * very versions `npm ci` put into the npm cache), and npm runs with `--offline`: it then takes
 * them from the cache instead of resolving them again. It also carries the `overrides` the README
 * tells Node 20 users to add (cookie 1.x, see README "Install"), which the lock reflects.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { removeDir, ROOT, tempDir } from '../helpers/index.js';

interface LockPackage {
  dev?: boolean;
  [key: string]: unknown;
}

const NPM_ENV = { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };

function npm(args: string[], cwd: string): string {
  try {
    return execFileSync('npm', args, { cwd, env: NPM_ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`npm ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

const CONSUMER_TS = `
import { Client, MiniqueueClient, MiniqueueError, type ClientOptions, type TopicStats } from 'miniqueue/client';

const options: ClientOptions = { url: process.env['MQ_URL'] };
const mq: MiniqueueClient = new Client(options);

// The shipped types are real: a wrong call is a compile error.
// @ts-expect-error publish needs a topic and a payload
void (() => mq.publish(42));

await mq.publish('installed', 'hello from another project');
for await (const msg of mq.subscribe('installed')) {
  const text: string = msg.data.toString();
  await msg.ack();
  const stats: TopicStats[] = await mq.topics();
  console.log(JSON.stringify({ text, id: msg.id, topics: stats.map((s) => s.topic), errorClass: MiniqueueError.name }));
  break;
}
await mq.close();
`;

test('npm pack -> npm install <tarball> in a fresh project: npx miniqueue --version, the CLI serves, miniqueue/client compiles with its types and works', async (t) => {
  const work = tempDir('mq-package-');
  t.after(() => removeDir(work));

  // The tarball of what is built now (npm test built dist/; --ignore-scripts so packing does not
  // rebuild dist/ under the other tests running from it).
  const packed = JSON.parse(npm(['pack', '--ignore-scripts', '--json', '--pack-destination', work], ROOT)) as { filename: string; files: { path: string }[] }[];
  const tarball = path.join(work, packed[0]!.filename);
  const files = packed[0]!.files.map((f) => f.path);
  assert.ok(files.includes('dist/bundle/miniqueue.js'));
  assert.ok(files.includes('dist/src/server/main.js'));
  assert.ok(files.includes('dist/src/client/index.d.ts'));
  assert.ok(files.includes('README.md'));
  assert.ok(!files.some((f) => f.startsWith('dist/test/') || f.startsWith('src/') || f.startsWith('test/') || f.endsWith('.map')), `only the built package: ${files.slice(0, 20).join(', ')} ...`);

  const project = path.join(work, 'consumer');
  fs.mkdirSync(project);
  const rootPkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { overrides: unknown };
  const rootLock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockPackage> };
  const packages: Record<string, unknown> = { '': { name: 'consumer', version: '1.0.0' } };
  for (const [key, value] of Object.entries(rootLock.packages)) {
    if (key !== '' && value.dev !== true) packages[key] = { ...value, extraneous: true };
  }
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module', overrides: rootPkg.overrides }, null, 2));
  fs.writeFileSync(path.join(project, 'package-lock.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', lockfileVersion: 3, requires: true, packages }, null, 2));

  npm(['install', '--offline', tarball], project);
  const installed = JSON.parse(fs.readFileSync(path.join(project, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  assert.match(installed.dependencies['miniqueue'] ?? '', /^file:.*\.tgz$/);

  const version = npm(['exec', '--offline', '--', 'miniqueue', '--version'], project).trim();
  const ownVersion = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  assert.equal(version, ownVersion);
  const help = npm(['exec', '--offline', '--', 'miniqueue', '--help'], project);
  assert.match(help, /miniqueue check/);

  // A TypeScript consumer, compiled with the repository's tsc against the installed package.
  fs.writeFileSync(path.join(project, 'index.ts'), CONSUMER_TS);
  fs.writeFileSync(
    path.join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        noEmitOnError: true,
        skipLibCheck: false,
        types: ['node'],
        typeRoots: [path.join(ROOT, 'node_modules', '@types')],
      },
      files: ['index.ts'],
    }),
  );
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', project], { cwd: project, encoding: 'utf8', stdio: 'pipe' });
  } catch (err) {
    assert.fail(`tsc failed on the consumer:\n${(err as { stdout?: string }).stdout ?? ''}`);
  }
  assert.ok(fs.existsSync(path.join(project, 'index.js')));

  // The installed CLI serves; the compiled consumer talks to it.
  const bin = path.join(project, 'node_modules', '.bin', 'miniqueue');
  const server = spawn(bin, ['--port', '0', '--redis-port', '-1', '--host', '127.0.0.1', '--no-tls', '--db', path.join(work, 'data')], {
    cwd: project,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => {
    if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    let err = '';
    server.stderr.on('data', (d: Buffer) => (err += d.toString()));
    server.once('exit', (code) => reject(new Error(`installed server exited with ${code}: ${err}`)));
    server.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /"msg":"listening"[^\n]*"port":(\d+)/.exec(out) ?? /"port":(\d+)[^\n]*"msg":"listening"/.exec(out);
      if (m !== null && out.includes('miniqueue ready')) resolve(Number(m[1]));
    });
  });
  const result = execFileSync(process.execPath, ['index.js'], { cwd: project, encoding: 'utf8', env: { ...process.env, MQ_URL: `http://127.0.0.1:${port}` }, timeout: 20_000 });
  const seen = JSON.parse(result.trim()) as { text: string; id: number; topics: string[]; errorClass: string };
  assert.equal(seen.text, 'hello from another project');
  assert.ok(seen.topics.includes('installed'));
  assert.equal(seen.errorClass, 'MiniqueueError');
  // The dashboard's files (assets/, and uPlot from the installed dependency) are in the package.
  for (const file of ['/dashboard', '/dashboard/dashboard.js', '/dashboard/uPlot.iife.min.js']) {
    assert.equal((await fetch(`http://127.0.0.1:${port}${file}`)).status, 200, file);
  }
  server.kill('SIGTERM');
});
