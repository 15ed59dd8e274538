/**
 * A model of what a power cut can leave of a directory tree, built from a trace of the system
 * calls a process made on it (power-loss checker, issue #13; after ALICE's and CrashMonkey's
 * persistence models).
 *
 * The tree under `root` is modelled as inodes (files and directories) and names (relative path ->
 * inode). Each change is an op at the position (`seq`) of the system call that made it:
 * - data ops on a file inode: a write (at a byte position) or a truncate;
 * - name ops: link (a file created with O_CREAT, or a directory made), unlink, rename; each
 *   belongs to the directories whose entries it changes.
 *
 * What survives a power cut at position `cut` (every call with seq <= cut done, nothing after):
 * - a file's data ops are durable up to the last fsync/fdatasync of that inode that completed by
 *   the cut (ops completed before the sync was entered); of the rest, any prefix may survive, and
 *   the first op after that prefix may be torn (a write kept in part, or its extent zero-filled);
 * - a name op is durable once every directory it changes was fsynced after it; the rest may each
 *   be kept or lost (ops carry their inode, so any subset makes a well-defined tree);
 * - `sync`/`syncfs` make everything before them durable.
 * fsync of a file does not make its directory entry durable (POSIX promises nothing of the kind;
 * ext4 often does, other file systems do not).
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseFdArg, parseIovec, parseStringArg, type Syscall } from './strace.js';

export type DataOp =
  | { seq: number; kind: 'write'; position: number; data: Buffer }
  | { seq: number; kind: 'truncate'; sizeBytes: number };

export interface NameOp {
  seq: number;
  kind: 'link' | 'unlink' | 'rename';
  /** Relative path the op creates (link, rename target) or removes (unlink). */
  path: string;
  /** rename: the source path. */
  from: string | undefined;
  inode: number;
  /** Inodes of the directories whose entries change. */
  dirInodes: number[];
}

export interface SyncOp {
  /** Completion position. */
  seq: number;
  /** Ops completed at or before this position are covered. */
  coversSeq: number;
  /** The inode synced, or -1 for sync()/syncfs() (everything). */
  inode: number;
}

/** Bytes moved on one TCP connection of the server by one call. */
export interface SocketIo {
  seq: number;
  /** The client's port: identifies the connection. */
  clientPort: number;
  direction: 'in' | 'out';
  bytes: number;
}

interface Inode {
  id: number;
  kind: 'file' | 'dir';
  initial: Buffer;
  ops: DataOp[];
  syncs: SyncOp[];
  sizeBytes: number;
}

type FdEntry =
  | { kind: 'file'; inode: number; cursor: { position: number }; append: boolean }
  | { kind: 'tcp'; localPort: number; clientPort: number }
  | { kind: 'other' };

/** How a crash state treats the ops that are not durable at the cut. */
export interface CrashChoice {
  /** Unsynced data ops kept, per file inode (missing: all of them kept when `keepAllData`, else none). */
  dataKept: Map<number, number>;
  /** Tear of the first dropped op, per file inode. */
  tear: Map<number, { kind: 'partial'; bytes: number } | { kind: 'zeros' }>;
  /** Unsynced name ops kept (by seq). */
  namesKept: Set<number>;
}

/** What is not durable at a cut: the choices a crash state makes. */
export interface CutPending {
  cut: number;
  /** Per file inode: its unsynced data ops (in order). */
  data: Map<number, DataOp[]>;
  /** Name ops not durable, in order. */
  names: NameOp[];
}

function tcpPorts(p: string | undefined): { localPort: number; clientPort: number } | undefined {
  const m = p === undefined ? null : /^TCP(?:v6)?:\[(?:.*)[:\]](\d+)->(?:.*)[:\]](\d+)\]$/.exec(p);
  return m === null ? undefined : { localPort: Number(m[1]), clientPort: Number(m[2]) };
}

export class FsModel {
  readonly root: string;
  readonly cwd: string;
  /** RESP port of the server: socket I/O on other ports is ignored. */
  readonly serverPort: number;
  readonly nameOps: NameOp[] = [];
  readonly socketIo: SocketIo[] = [];
  /** Every sync op, in completion order. */
  readonly syncs: SyncOp[] = [];
  /** Seqs of data ops (any file), in order: candidate cut points. */
  readonly dataSeqs: number[] = [];
  readonly #inodes: Inode[] = [];
  readonly #initialNames = new Map<string, number>();
  /** The names as the process saw them (volatile), to resolve opens. */
  readonly #names = new Map<string, number>();
  readonly #fds = new Map<number, FdEntry>();
  /** Calls on the tree the model does not understand (reported, and make the run fail). */
  readonly unsupported: string[] = [];
  lastSeq = -1;

  /**
   * @param root - absolute real path of the tree (it exists and is durable).
   * @param initial - its content before the trace: relative path -> file bytes, or 'dir'.
   */
  constructor(root: string, cwd: string, serverPort: number, initial: Map<string, Buffer | 'dir'> = new Map()) {
    this.root = root;
    this.cwd = cwd;
    this.serverPort = serverPort;
    const rootInode = this.#newInode('dir', Buffer.alloc(0));
    this.#initialNames.set('', rootInode.id);
    this.#names.set('', rootInode.id);
    for (const [rel, content] of [...initial].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const inode = this.#newInode(content === 'dir' ? 'dir' : 'file', content === 'dir' ? Buffer.alloc(0) : content);
      this.#initialNames.set(rel, inode.id);
      this.#names.set(rel, inode.id);
    }
  }

  #newInode(kind: 'file' | 'dir', initial: Buffer): Inode {
    const inode: Inode = { id: this.#inodes.length, kind, initial, ops: [], syncs: [], sizeBytes: initial.length };
    this.#inodes.push(inode);
    return inode;
  }

  /** Relative path inside root, or undefined when `abs` is outside it. */
  #rel(abs: string): string | undefined {
    const p = path.resolve(this.cwd, abs.replace(/ \(deleted\)$/, ''));
    if (p === this.root) return '';
    return p.startsWith(this.root + '/') ? p.slice(this.root.length + 1) : undefined;
  }

  /** The absolute path a (dirfd, path) argument pair names. */
  #resolveAt(dirfdArg: string | undefined, pathArg: string): string {
    const p = parseStringArg(pathArg).data.toString('utf8');
    if (path.isAbsolute(p)) return p;
    const base = dirfdArg === undefined ? this.cwd : (parseFdArg(dirfdArg).path ?? this.cwd);
    return path.resolve(base, p);
  }

  #dirInode(rel: string): number {
    const parent = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '';
    const id = this.#names.get(parent);
    if (id === undefined) throw new Error(`parent of ${rel} unknown`);
    return id;
  }

  #fileFd(arg: string): { entry: Extract<FdEntry, { kind: 'file' }>; inode: Inode } | undefined {
    const { fd } = parseFdArg(arg);
    const entry = this.#fds.get(fd);
    if (entry === undefined || entry.kind !== 'file') return undefined;
    return { entry, inode: this.#inodes[entry.inode]! };
  }

  #addData(inode: Inode, op: DataOp): void {
    if (inode.kind !== 'file') {
      this.unsupported.push(`data op on a directory at seq ${op.seq}`);
      return;
    }
    inode.ops.push(op);
    this.dataSeqs.push(op.seq);
    inode.sizeBytes = op.kind === 'write' ? Math.max(inode.sizeBytes, op.position + op.data.length) : op.sizeBytes;
  }

  #addName(op: NameOp): void {
    this.nameOps.push(op);
    if (op.kind === 'rename') {
      const moved = [...this.#names].filter(([p]) => p === op.from || p.startsWith(op.from + '/'));
      for (const [p] of [...this.#names].filter(([p]) => p === op.path || p.startsWith(op.path + '/'))) this.#names.delete(p);
      for (const [p, id] of moved) {
        this.#names.delete(p);
        this.#names.set(op.path + p.slice(op.from!.length), id);
      }
    } else if (op.kind === 'unlink') {
      this.#names.delete(op.path);
    } else {
      this.#names.set(op.path, op.inode);
    }
  }

  /** Feeds one system call (in completion order). */
  feed(sc: Syscall): void {
    this.lastSeq = sc.seq;
    const a = sc.args;
    try {
      switch (sc.name) {
        case 'open':
        case 'openat':
        case 'creat':
          return this.#open(sc);
        case 'accept':
        case 'accept4': {
          if (sc.ret < 0) return;
          const ports = tcpPorts(sc.retPath);
          this.#fds.set(sc.ret, ports === undefined ? { kind: 'other' } : { kind: 'tcp', ...ports });
          return;
        }
        case 'close':
          if (sc.ret === 0) this.#fds.delete(parseFdArg(a[0]!).fd);
          return;
        case 'dup':
        case 'dup2':
        case 'dup3': {
          if (sc.ret < 0) return;
          const from = this.#fds.get(parseFdArg(a[0]!).fd);
          if (from === undefined) this.#fds.delete(sc.ret);
          else this.#fds.set(sc.ret, from);
          return;
        }
        case 'read': {
          const entry = this.#fds.get(parseFdArg(a[0]!).fd);
          if (entry?.kind === 'tcp' && entry.localPort === this.serverPort && sc.ret > 0) {
            this.socketIo.push({ seq: sc.seq, clientPort: entry.clientPort, direction: 'in', bytes: sc.ret });
          }
          return;
        }
        case 'write':
        case 'writev':
        case 'pwrite64':
        case 'pwritev':
        case 'pwritev2':
          return this.#write(sc);
        case 'ftruncate':
        case 'truncate': {
          if (sc.ret !== 0) return;
          let inode: Inode | undefined;
          if (sc.name === 'ftruncate') inode = this.#fileFd(a[0]!)?.inode;
          else {
            const rel = this.#rel(this.#resolveAt(undefined, a[0]!));
            const id = rel === undefined ? undefined : this.#names.get(rel);
            inode = id === undefined ? undefined : this.#inodes[id];
          }
          if (inode !== undefined) this.#addData(inode, { seq: sc.seq, kind: 'truncate', sizeBytes: Number(a[1]) });
          return;
        }
        case 'fallocate': {
          const f = this.#fileFd(a[0]!);
          if (f !== undefined && sc.ret === 0) this.unsupported.push(`fallocate at seq ${sc.seq}`);
          return;
        }
        case 'fsync':
        case 'fdatasync': {
          if (sc.ret !== 0) return;
          const entry = this.#fds.get(parseFdArg(a[0]!).fd);
          if (entry?.kind !== 'file') return;
          const op: SyncOp = { seq: sc.seq, coversSeq: sc.enteredAfterSeq, inode: entry.inode };
          this.syncs.push(op);
          this.#inodes[entry.inode]!.syncs.push(op);
          return;
        }
        case 'sync':
        case 'syncfs':
          if (sc.ret === 0) this.syncs.push({ seq: sc.seq, coversSeq: sc.enteredAfterSeq, inode: -1 });
          return;
        case 'mkdir':
        case 'mkdirat': {
          if (sc.ret !== 0) return;
          const abs = sc.name === 'mkdir' ? this.#resolveAt(undefined, a[0]!) : this.#resolveAt(a[0], a[1]!);
          const rel = this.#rel(abs);
          if (rel === undefined) return;
          const inode = this.#newInode('dir', Buffer.alloc(0));
          this.#addName({ seq: sc.seq, kind: 'link', path: rel, from: undefined, inode: inode.id, dirInodes: [this.#dirInode(rel)] });
          return;
        }
        case 'unlink':
        case 'unlinkat':
        case 'rmdir': {
          if (sc.ret !== 0) return;
          const abs = sc.name === 'unlinkat' ? this.#resolveAt(a[0], a[1]!) : this.#resolveAt(undefined, a[0]!);
          const rel = this.#rel(abs);
          if (rel === undefined) return;
          const id = this.#names.get(rel);
          if (id === undefined) {
            this.unsupported.push(`unlink of unknown ${rel} at seq ${sc.seq}`);
            return;
          }
          this.#addName({ seq: sc.seq, kind: 'unlink', path: rel, from: undefined, inode: id, dirInodes: [this.#dirInode(rel)] });
          return;
        }
        case 'rename':
        case 'renameat':
        case 'renameat2': {
          if (sc.ret !== 0) return;
          const fromAbs = sc.name === 'rename' ? this.#resolveAt(undefined, a[0]!) : this.#resolveAt(a[0], a[1]!);
          const toAbs = sc.name === 'rename' ? this.#resolveAt(undefined, a[1]!) : this.#resolveAt(a[2], a[3]!);
          const from = this.#rel(fromAbs);
          const to = this.#rel(toAbs);
          if (from === undefined && to === undefined) return;
          if (from === undefined || to === undefined) {
            this.unsupported.push(`rename across the root at seq ${sc.seq}`);
            return;
          }
          const id = this.#names.get(from);
          if (id === undefined) {
            this.unsupported.push(`rename of unknown ${from} at seq ${sc.seq}`);
            return;
          }
          const dirs = [...new Set([this.#dirInode(from), this.#dirInode(to)])];
          this.#addName({ seq: sc.seq, kind: 'rename', path: to, from, inode: id, dirInodes: dirs });
          return;
        }
        case 'link':
        case 'linkat':
        case 'symlink':
        case 'symlinkat':
          if (sc.ret === 0 && sc.args.some((x) => x.startsWith('"') && this.#rel(parseStringArg(x).data.toString('utf8')) !== undefined)) {
            this.unsupported.push(`${sc.name} at seq ${sc.seq}`);
          }
          return;
        default:
          return;
      }
    } catch (err) {
      this.unsupported.push(`${sc.name} at seq ${sc.seq}: ${(err as Error).message}`);
    }
  }

  #open(sc: Syscall): void {
    if (sc.ret < 0) return;
    const flags = sc.name === 'creat' ? 'O_CREAT|O_WRONLY|O_TRUNC' : sc.name === 'open' ? sc.args[1]! : sc.args[2]!;
    const abs = sc.retPath ?? (sc.name === 'openat' ? this.#resolveAt(sc.args[0], sc.args[1]!) : this.#resolveAt(undefined, sc.args[0]!));
    const rel = this.#rel(abs);
    if (rel === undefined) {
      this.#fds.set(sc.ret, { kind: 'other' });
      return;
    }
    let id = this.#names.get(rel);
    if (id === undefined) {
      if (!flags.includes('O_CREAT')) {
        this.unsupported.push(`open of unknown ${rel} at seq ${sc.seq}`);
        this.#fds.set(sc.ret, { kind: 'other' });
        return;
      }
      const inode = this.#newInode('file', Buffer.alloc(0));
      id = inode.id;
      this.#addName({ seq: sc.seq, kind: 'link', path: rel, from: undefined, inode: id, dirInodes: [this.#dirInode(rel)] });
    } else if (flags.includes('O_TRUNC') && this.#inodes[id]!.kind === 'file') {
      this.#addData(this.#inodes[id]!, { seq: sc.seq, kind: 'truncate', sizeBytes: 0 });
    }
    this.#fds.set(sc.ret, { kind: 'file', inode: id, cursor: { position: 0 }, append: flags.includes('O_APPEND') });
  }

  #write(sc: Syscall): void {
    const a = sc.args;
    const { fd, path: fdPath } = parseFdArg(a[0]!);
    const entry = this.#fds.get(fd);
    if (entry === undefined || entry.kind === 'other') {
      // A socket accepted before tracing cannot happen (the trace starts with the process), but
      // writes carry their endpoints anyway.
      const ports = tcpPorts(fdPath);
      if (ports !== undefined && ports.localPort === this.serverPort && sc.ret > 0) {
        this.socketIo.push({ seq: sc.seq, clientPort: ports.clientPort, direction: 'out', bytes: sc.ret });
      }
      return;
    }
    if (entry.kind === 'tcp') {
      if (entry.localPort === this.serverPort && sc.ret > 0) {
        this.socketIo.push({ seq: sc.seq, clientPort: entry.clientPort, direction: 'out', bytes: sc.ret });
      }
      return;
    }
    if (sc.ret <= 0) return;
    const vector = sc.name === 'writev' || sc.name.startsWith('pwritev');
    const { data, cut } = vector ? parseIovec(a[1]!) : parseStringArg(a[1]!);
    if (data.length < sc.ret) {
      this.unsupported.push(`${sc.name} data cut short by strace at seq ${sc.seq} (raise -s)`);
      if (cut) return;
    }
    const inode = this.#inodes[entry.inode]!;
    let position: number;
    if (sc.name === 'pwrite64' || sc.name.startsWith('pwritev')) position = Number(a[3]);
    else {
      position = entry.append ? inode.sizeBytes : entry.cursor.position;
      entry.cursor.position = position + sc.ret;
    }
    this.#addData(inode, { seq: sc.seq, kind: 'write', position, data: Buffer.from(data.subarray(0, sc.ret)) });
  }

  /** Whether `op` (a name op) is durable at `cut`. */
  #nameDurable(op: NameOp, cut: number): boolean {
    return op.dirInodes.every((d) =>
      this.syncs.some((s) => s.seq <= cut && s.coversSeq >= op.seq && (s.inode === d || s.inode === -1)),
    );
  }

  /** Number of `inode`'s data ops (at or before `cut`) that are durable at `cut`. */
  #dataDurable(inode: Inode, cut: number): number {
    let covers = -1;
    for (const s of inode.syncs) if (s.seq <= cut && s.coversSeq > covers) covers = s.coversSeq;
    for (const s of this.syncs) if (s.inode === -1 && s.seq <= cut && s.coversSeq > covers) covers = s.coversSeq;
    let n = 0;
    while (n < inode.ops.length && inode.ops[n]!.seq <= covers) n++;
    return n;
  }

  /** What is not durable at `cut`. */
  pending(cut: number): CutPending {
    const data = new Map<number, DataOp[]>();
    for (const inode of this.#inodes) {
      if (inode.kind !== 'file') continue;
      const durable = this.#dataDurable(inode, cut);
      const upToCut = inode.ops.filter((o) => o.seq <= cut);
      if (upToCut.length > durable) data.set(inode.id, upToCut.slice(durable));
    }
    const names = this.nameOps.filter((op) => op.seq <= cut && !this.#nameDurable(op, cut));
    return { cut, data, names };
  }

  /**
   * The crash state at `cut` under `choice`: the tree as it would be found after the power cut,
   * relative path -> file bytes or 'dir' (names whose directory did not survive are left out).
   */
  build(cut: number, choice: CrashChoice): Map<string, Buffer | 'dir'> {
    const pending = this.pending(cut);
    const pendingNames = new Set(pending.names.map((o) => o.seq));
    // Names: durable ops plus the chosen pending ones, applied in order to the initial tree.
    const names = new Map(this.#initialNames);
    for (const op of this.nameOps) {
      if (op.seq > cut) break;
      if (pendingNames.has(op.seq) && !choice.namesKept.has(op.seq)) continue;
      if (op.kind === 'link') names.set(op.path, op.inode);
      else if (op.kind === 'unlink') {
        for (const p of [...names.keys()]) if (p === op.path || p.startsWith(op.path + '/')) names.delete(p);
      } else {
        for (const p of [...names.keys()]) if (p === op.path || p.startsWith(op.path + '/')) names.delete(p);
        const moved = [...names].filter(([p]) => p === op.from || p.startsWith(op.from + '/'));
        for (const [p] of moved) names.delete(p);
        // The inode lands at the target even if its source's link was lost: rename's effect
        // carries its inode (see the file comment).
        if (moved.length === 0) names.set(op.path, op.inode);
        for (const [p, id] of moved) names.set(op.path + p.slice(op.from!.length), id);
      }
    }
    // Contents.
    const contents = new Map<number, Buffer>();
    const contentOf = (id: number): Buffer => {
      let c = contents.get(id);
      if (c !== undefined) return c;
      const inode = this.#inodes[id]!;
      const durable = this.#dataDurable(inode, cut);
      const unsynced = pending.data.get(id) ?? [];
      const kept = Math.min(choice.dataKept.get(id) ?? 0, unsynced.length);
      let buf = Buffer.from(inode.initial);
      const apply = (op: DataOp, tear?: { kind: 'partial'; bytes: number } | { kind: 'zeros' }): void => {
        if (op.kind === 'truncate') {
          if (tear !== undefined) return; // a truncate is not torn: it happened or not
          buf = op.sizeBytes <= buf.length ? Buffer.from(buf.subarray(0, op.sizeBytes)) : Buffer.concat([buf, Buffer.alloc(op.sizeBytes - buf.length)]);
          return;
        }
        let data = op.data;
        if (tear?.kind === 'partial') data = data.subarray(0, Math.min(tear.bytes, data.length));
        else if (tear?.kind === 'zeros') data = Buffer.alloc(data.length);
        const end = op.position + data.length;
        if (end > buf.length) buf = Buffer.concat([buf, Buffer.alloc(end - buf.length)]);
        data.copy(buf, op.position);
      };
      for (let i = 0; i < durable; i++) apply(inode.ops[i]!);
      for (let i = 0; i < kept; i++) apply(unsynced[i]!);
      const tear = choice.tear.get(id);
      if (tear !== undefined && kept < unsynced.length) apply(unsynced[kept]!, tear);
      c = buf;
      contents.set(id, c);
      return c;
    };
    const out = new Map<string, Buffer | 'dir'>();
    for (const rel of [...names.keys()].sort()) {
      if (rel === '') continue;
      const parent = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '';
      if (parent !== '' && out.get(parent) !== 'dir') continue; // its directory did not survive
      const inode = this.#inodes[names.get(rel)!]!;
      out.set(rel, inode.kind === 'dir' ? 'dir' : contentOf(inode.id));
    }
    return out;
  }

  /** Writes a tree from {@link build} into `outDir` (created; must not exist). */
  static writeTree(tree: Map<string, Buffer | 'dir'>, outDir: string): void {
    fs.mkdirSync(outDir);
    for (const [rel, content] of [...tree].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (content === 'dir') fs.mkdirSync(path.join(outDir, rel));
      else fs.writeFileSync(path.join(outDir, rel), content);
    }
  }

  /** A one-line description of a name op, for reports. */
  static describe(op: NameOp): string {
    return op.kind === 'rename' ? `rename ${op.from} -> ${op.path}` : `${op.kind} ${op.path}`;
  }
}
