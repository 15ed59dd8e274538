/**
 * Runs a command under strace and parses the trace into completed system calls, in the order
 * they completed (power-loss checker, issue #13).
 *
 * Why strace: it records the real compiled server with no change to it and no native build, it
 * sees every thread (fdatasync runs on libuv's thread pool), and with `-yy` each fd carries its
 * path or TCP endpoints, with `-xx` every string is hex-escaped (so file data and paths parse
 * without ambiguity, whatever bytes they hold). Its output is ordered: a traced thread is stopped
 * at each syscall exit until strace has printed it, so a call that causes another (fdatasync
 * completes, then the main thread writes the answer to the socket) is always printed before it.
 *
 * `read` is traced raw (`-e raw=read`): only its fd and byte count are needed (to tell which
 * commands the server had received at a cut), and decoding the data of every module the server
 * loads at start would multiply the trace size.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';

/** One completed system call. */
export interface Syscall {
  /** Position in completion order, from 0. */
  seq: number;
  /** Position (in completion order) of the last call completed before this one was entered. */
  enteredAfterSeq: number;
  pid: number;
  /** `HH:MM:SS.micro` as strace printed it. */
  time: string;
  name: string;
  /** Top-level arguments, raw text (strings hex-escaped, fds as `N<\x..>`). */
  args: string[];
  /** Return value (negative on error). */
  ret: number;
  /** The `<...>` annotation of the return value, decoded (the path of a returned fd). */
  retPath: string | undefined;
}

/** The system calls the checker needs (file-system changes, syncs, fd bookkeeping, socket I/O). */
export const TRACED_SYSCALLS = [
  'open', 'openat', 'creat', 'close', 'dup', 'dup2', 'dup3',
  'write', 'pwrite64', 'writev', 'pwritev', 'pwritev2', 'read',
  'fsync', 'fdatasync', 'sync', 'syncfs',
  'ftruncate', 'truncate', 'fallocate',
  'rename', 'renameat', 'renameat2', 'unlink', 'unlinkat', 'mkdir', 'mkdirat', 'rmdir',
  'link', 'linkat', 'symlink', 'symlinkat',
  'accept', 'accept4',
] as const;

/** strace's command-line options for {@link TRACED_SYSCALLS}; `-s` is large enough for any write the server makes. */
export function straceArgs(outFile: string, stringLimitBytes: number): string[] {
  return [
    '-f', '-qq', '-tt', '-yy', '-xx',
    '-s', String(stringLimitBytes),
    '-e', `trace=${TRACED_SYSCALLS.join(',')}`,
    '-e', 'raw=read',
    '-o', outFile,
  ];
}

/** Spawns `command args` under strace writing to `outFile`. */
export function spawnTraced(
  straceBin: string,
  outFile: string,
  stringLimitBytes: number,
  command: string,
  args: string[],
  cwd: string,
): ChildProcess {
  return spawn(straceBin, [...straceArgs(outFile, stringLimitBytes), '--', command, ...args], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Decodes strace `-xx` text (`\x2f\x74...`), which may contain plain characters too. */
export function decodeHex(s: string): Buffer {
  if (s.length % 4 === 0 && /^(?:\\x[0-9a-f]{2})*$/.test(s)) return Buffer.from(s.replace(/\\x/g, ''), 'hex');
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && s[i + 1] === 'x') {
      out.push(Number.parseInt(s.slice(i + 2, i + 4), 16));
      i += 3;
    } else if (s[i] === '\\') {
      const c = s[++i]!;
      out.push(c === 'n' ? 10 : c === 't' ? 9 : c === 'r' ? 13 : c === '0' ? 0 : c.charCodeAt(0));
    } else {
      out.push(s.charCodeAt(i));
    }
  }
  return Buffer.from(out);
}

/** A quoted string argument (`"\x68\x69"`, maybe followed by `...` when strace cut it short). */
export function parseStringArg(arg: string): { data: Buffer; cut: boolean } {
  const m = /^"((?:[^"\\]|\\.)*)"(\.\.\.)?$/s.exec(arg.trim());
  if (m === null) throw new Error(`not a string argument: ${arg.slice(0, 80)}`);
  return { data: decodeHex(m[1]!), cut: m[2] !== undefined };
}

/** An fd argument (`18<\x2f...>`, `AT_FDCWD<...>`, or a bare number): its number and decoded path. */
export function parseFdArg(arg: string): { fd: number; path: string | undefined } {
  // An fd of a file unlinked since it was opened reads `19<\x2f...>(deleted)`.
  const m = /^\s*(AT_FDCWD|0x[0-9a-f]+|-?\d+)(?:<(.*)>)?(?:\(deleted\))?\s*$/s.exec(arg);
  if (m === null) throw new Error(`not an fd argument: ${arg.slice(0, 40)}...${arg.slice(-60)}`);
  const fd = m[1] === 'AT_FDCWD' ? -100 : Number(m[1]);
  return { fd, path: m[2] === undefined ? undefined : decodeHex(m[2]).toString('utf8') };
}

/** The `iov_base` strings of a `writev`/`pwritev` iovec array, concatenated. */
export function parseIovec(arg: string): { data: Buffer; cut: boolean } {
  const parts: Buffer[] = [];
  let cut = false;
  const re = /iov_base="((?:[^"\\]|\\.)*)"(\.\.\.)?/g;
  for (let m = re.exec(arg); m !== null; m = re.exec(arg)) {
    parts.push(decodeHex(m[1]!));
    if (m[2] !== undefined) cut = true;
  }
  if (/\.\.\.\]\s*$/.test(arg)) cut = true; // more iovecs than strace printed
  return { data: Buffer.concat(parts), cut };
}

/** Splits an argument list at top-level commas (strings, brackets, braces, fd annotations respected). */
export function splitArgs(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let inString = false;
  let inAnnotation = false;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (inAnnotation) {
      // Paths are hex-escaped, socket endpoints are not: `<TCP:[127.0.0.1:1->127.0.0.1:2]>`.
      if (c === '>' && s[i - 1] !== '-') inAnnotation = false;
      continue;
    }
    if (c === '"') inString = true;
    // An fd annotation follows the fd number or AT_FDCWD; elsewhere `<` and `>` are text (`[28 => 28]`).
    else if (c === '<' && i > 0 && /[0-9D]/.test(s[i - 1]!)) inAnnotation = true;
    else if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth--;
    else if (c === ',' && depth === 0) {
      out.push(s.slice(start, i).trim());
      start = i + 1;
    }
  }
  const last = s.slice(start).trim();
  if (last.length > 0 || out.length > 0) out.push(last);
  return out;
}

/** Finds the ` = ret` that ends a call: the last `) = ` outside strings. */
function splitReturn(body: string): { argText: string; retText: string } | undefined {
  let inString = false;
  let close = -1;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === ')' && body.startsWith(' = ', i + 1)) close = i;
  }
  if (close < 0) return undefined;
  return { argText: body.slice(0, close), retText: body.slice(close + 4) };
}

function parseReturn(retText: string): { ret: number; retPath: string | undefined } {
  const m = /^(0x[0-9a-f]+|-?\d+|\?)(?:<(.*)>)?/s.exec(retText.trim());
  if (m === null || m[1] === '?') return { ret: Number.NaN, retPath: undefined };
  return { ret: Number(m[1]), retPath: m[2] === undefined ? undefined : decodeHex(m[2]).toString('utf8') };
}

const LINE = /^(\d+)\s+(\d\d:\d\d:\d\d\.\d+)\s+(.*)$/s;

/**
 * Parses a whole strace output file (`-f -tt` format). Calls interrupted by a thread switch
 * (`<unfinished ...>` / `<... resumed>`) are joined; calls that never completed (the process
 * was killed inside them) are dropped: they took no effect the checker may count on.
 */
export function parseTrace(text: string): Syscall[] {
  const out: Syscall[] = [];
  const unfinished = new Map<number, { name: string; head: string; enteredAfterSeq: number }>();
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end);
    start = end + 1;
    const m = LINE.exec(line);
    if (m === null) continue;
    const pid = Number(m[1]);
    const time = m[2]!;
    const body = m[3]!;
    if (body.startsWith('---') || body.startsWith('+++')) continue;
    let name: string;
    let full: string;
    let enteredAfterSeq = out.length - 1;
    if (body.startsWith('<... ')) {
      const r = /^<\.\.\. (\w+) resumed>(.*)$/s.exec(body);
      if (r === null) continue;
      const u = unfinished.get(pid);
      unfinished.delete(pid);
      if (u === undefined || u.name !== r[1]) continue;
      name = u.name;
      full = u.head + r[2]!;
      enteredAfterSeq = u.enteredAfterSeq;
    } else {
      const open = body.indexOf('(');
      if (open < 0) continue;
      name = body.slice(0, open);
      if (body.endsWith(' <unfinished ...>')) {
        unfinished.set(pid, { name, head: body.slice(open + 1, body.length - ' <unfinished ...>'.length), enteredAfterSeq });
        continue;
      }
      full = body.slice(open + 1);
    }
    const split = splitReturn(full);
    if (split === undefined) continue;
    const { ret, retPath } = parseReturn(split.retText);
    const args = splitArgs(split.argText);
    if (Number.isNaN(ret)) {
      // `= ?`: the process died in the call. A write may have taken effect all the same.
      const assumed = killedWrite(name, args);
      if (assumed !== undefined) out.push({ seq: out.length, enteredAfterSeq, pid, time, name, args, ret: assumed, retPath: undefined });
      continue;
    }
    out.push({ seq: out.length, enteredAfterSeq, pid, time, name, args, ret, retPath });
  }
  // Calls still unfinished when the process was killed: a write may have reached the socket or
  // the page cache before the kill (a client may hold its answer), so it counts as done in full;
  // anything else (an fdatasync) counts as not done.
  for (const [pid, u] of unfinished) {
    const args = splitArgs(u.head);
    const assumed = killedWrite(u.name, args);
    if (assumed !== undefined) out.push({ seq: out.length, enteredAfterSeq: u.enteredAfterSeq, pid, time: '', name: u.name, args, ret: assumed, retPath: undefined });
  }
  return out;
}

/** The byte count a write cut off by the kill is taken to have written (all of it), or undefined for other calls. */
function killedWrite(name: string, args: string[]): number | undefined {
  try {
    if (name === 'write' || name === 'pwrite64') return parseStringArg(args[1]!).data.length;
    if (name === 'writev' || name.startsWith('pwritev')) return parseIovec(args[1]!).data.length;
  } catch {
    return undefined;
  }
  return undefined;
}

/** Reads and parses a trace file. */
export function readTrace(file: string): Syscall[] {
  return parseTrace(fs.readFileSync(file, 'latin1'));
}
