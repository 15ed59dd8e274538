#!/usr/bin/env node
// Makes sure the command-line tools the tests drive are installed: redis-cli (Debian
// redis-tools), curl with HTTP/2, Prometheus (scrapes /metrics over HTTP/1.1 and HTTP/2),
// Chromium (the /dashboard test, at /usr/bin/chromium), strace (the power-loss checker records
// the server with it) and nats-server (the jetstream engine's tests start a three-node cluster).
// On a fresh Debian machine, as root, it installs them with apt-get; anywhere else it says what
// is missing and exits non-zero, so `npm test` never runs half a suite silently.
import { execFileSync, spawnSync } from 'node:child_process';

const needed = [
  { cmd: 'redis-cli', pkg: 'redis-tools' },
  { cmd: 'curl', pkg: 'curl' },
  { cmd: 'prometheus', pkg: 'prometheus' },
  { cmd: 'chromium', pkg: 'chromium' },
  { cmd: 'strace', pkg: 'strace' },
  { cmd: 'nats-server', pkg: 'nats-server' },
];
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const missing = needed.filter((t) => !has(t.cmd));
if (missing.length === 0) process.exit(0);
const pkgs = missing.map((t) => t.pkg);
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
if (isRoot && has('apt-get')) {
  console.log(`installing ${pkgs.join(' ')} for the tests (apt-get)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', ...pkgs], { stdio: 'inherit', env });
  process.exit(0);
}
console.error(`miniqueue tests need: ${missing.map((t) => t.cmd).join(', ')} (Debian: apt-get install ${pkgs.join(' ')})`);
process.exit(1);
