/**
 * The RESP command table (issue 12): every command has an arity and a handler, the flags are on
 * exactly the commands that need them, and dispatch checks auth, stream mode, the name and the
 * arity once, in that order. The first tests drive `dispatch` with a recording context; the last
 * walks the table against a real server, so the table and what clients see cannot drift apart.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { BrokerError } from '../../../src/errors.js';
import { ALLOWED_WHILE_SUBSCRIBED, COMMANDS, commandName, dispatch, type CommandContext, type CommandForm } from '../../../src/protocols/resp/command-table.js';
import { PONG } from '../../../src/protocols/resp/encoder.js';
import { describeReply, encodeCommand, isErrorReply, removeDir, type Reply, RespConn, ROOT, startInProcess, tempDir } from '../../helpers/index.js';

function assertForm(name: string, f: CommandForm): void {
  assert.ok(Number.isInteger(f.minArgs) && f.minArgs >= 1, `${name}: minArgs ${f.minArgs} counts the name`);
  assert.ok(f.maxArgs === Infinity || Number.isInteger(f.maxArgs), `${name}: maxArgs ${f.maxArgs}`);
  assert.ok(f.maxArgs >= f.minArgs, `${name}: maxArgs ${f.maxArgs} >= minArgs ${f.minArgs}`);
  assert.equal(typeof f.handler, 'function', `${name}: handler`);
}

test('every command has an upper-case name, an arity and a handler, in one object shape', () => {
  assert.ok(COMMANDS.size >= 20);
  const keys = JSON.stringify(Object.keys(COMMANDS.get('PUBLISH')!));
  for (const [name, spec] of COMMANDS) {
    assert.match(name, /^[A-Z]+$/);
    assertForm(name, spec);
    assert.equal(JSON.stringify(Object.keys(spec)), keys, `${name} has the same fields as PUBLISH`);
    assert.equal(typeof spec.allowedBeforeAuth, 'boolean');
    assert.equal(typeof spec.readsPendingWrites, 'boolean');
    if (spec.whileSubscribed !== null) assertForm(`${name} (subscribed)`, spec.whileSubscribed);
  }
});

test('the flags are on exactly the commands that need them', () => {
  const flagged = (pick: (s: NonNullable<ReturnType<typeof COMMANDS.get>>) => boolean): string[] =>
    [...COMMANDS].filter(([, s]) => pick(s)).map(([n]) => n).sort();
  // Redis lets these through before AUTH.
  assert.deepEqual(flagged((s) => s.allowedBeforeAuth), ['AUTH', 'HELLO', 'QUIT']);
  // These read what a pending PUBLISH / DEL of the same connection changes; settles name ids
  // an already answered RESERVE handed out, so they need not wait.
  assert.deepEqual(flagged((s) => s.readsPendingWrites), ['DEL', 'PURGE', 'RESERVE', 'STATS', 'SUBSCRIBE', 'TOPICS']);
  assert.deepEqual(flagged((s) => s.whileSubscribed !== null), ['ACK', 'BACK', 'DACK', 'NACK', 'PING', 'QUIT', 'TOUCH']);
});

test('arities are Redis-style bounds (the name counted), written out so a change to one is deliberate', () => {
  const arity = (f: CommandForm | null): string => (f === null ? '-' : `${f.minArgs}..${f.maxArgs === Infinity ? 'n' : f.maxArgs}`);
  const table = Object.fromEntries([...COMMANDS].map(([n, s]) => [n, `${arity(s)} ${arity(s.whileSubscribed)}`]));
  assert.deepEqual(table, {
    PUBLISH: '3..3 -',
    RESERVE: '2..3 -',
    ACK: '3..3 1..1',
    NACK: '3..3 1..1',
    BACK: '3..3 1..1',
    DACK: '4..4 1..n', // stream-mode DACK answers a wrong count with its usage
    TOUCH: '3..3 1..1',
    SUBSCRIBE: '2..2 -',
    TOPICS: '1..1 -',
    DEL: '2..n -',
    PURGE: '2..n -',
    STATS: '2..2 -',
    PING: '1..2 1..n',
    ECHO: '2..2 -',
    QUIT: '1..n 1..n',
    SELECT: '2..2 -',
    INFO: '1..n -',
    CLIENT: '2..n -',
    HELLO: '1..n -',
    COMMAND: '1..n -',
    AUTH: '2..3 -',
    READONLY: '1..n -',
    READWRITE: '1..n -',
    RESET: '1..n -',
  });
});

test('commandName: the hot spellings and the general path agree, and every table name maps to itself', () => {
  assert.equal(commandName(Buffer.from('PUBLISH')), 'PUBLISH');
  assert.equal(commandName(Buffer.from('publish')), 'PUBLISH');
  assert.equal(commandName(Buffer.from('ACK')), 'ACK');
  assert.equal(commandName(Buffer.from('aCk')), 'ACK');
  assert.equal(commandName(Buffer.from('PUBLISHX')), 'PUBLISHX');
  for (const name of COMMANDS.keys()) {
    assert.equal(commandName(Buffer.from(name)), name);
    assert.equal(commandName(Buffer.from(name.toLowerCase())), name);
  }
});

interface Recorded {
  c: CommandContext;
  replies: unknown[];
  refusals: string[];
  quits: number;
}

/**
 * A context that records replies, refusals and QUIT, and throws on anything else a handler
 * might reach for (so a test fails if dispatch runs a handler it should not).
 */
function recordingContext(state: { authenticated: boolean; subscribed: boolean; loading?: boolean }): Recorded {
  const rec: Recorded = { c: undefined as unknown as CommandContext, replies: [], refusals: [], quits: 0 };
  const replies = {
    reply: (r: unknown) => rec.replies.push(r),
    replyError: (err: unknown) => rec.replies.push(err instanceof BrokerError ? `-${err.toRespLine()}` : err),
  };
  const queue = new Proxy(
    { subscribed: state.subscribed },
    {
      get(target, prop) {
        if (prop === 'subscribed') return target.subscribed;
        throw new Error(`handler reached queue.${String(prop)}`);
      },
    },
  );
  rec.c = {
    replies,
    queue,
    options: {
      admission: { refuse: (_p: string, reason: string) => rec.refusals.push(reason) },
      engine: { loading: state.loading === true },
    },
    authenticated: state.authenticated,
    quit: () => rec.quits++,
  } as unknown as CommandContext;
  return rec;
}

function run(rec: Recorded, ...words: string[]): void {
  const args = words.map((w) => Buffer.from(w));
  const name = commandName(args[0]!);
  dispatch(rec.c, COMMANDS.get(name), name, args);
}

test('dispatch: arity errors name the command and do not run the handler', () => {
  for (const [name, spec] of COMMANDS) {
    const rec = recordingContext({ authenticated: true, subscribed: false });
    const lower = name.toLowerCase();
    const expected = `-ERR wrong number of arguments for '${lower}' command`;
    if (spec.minArgs > 1) {
      run(rec, lower, ...Array<string>(spec.minArgs - 2).fill('x'));
      assert.deepEqual(rec.replies, [expected], `${name} with ${spec.minArgs - 1} arguments`);
    }
    if (spec.maxArgs !== Infinity) {
      rec.replies.length = 0;
      run(rec, name, ...Array<string>(spec.maxArgs).fill('x'));
      assert.deepEqual(rec.replies, [expected], `${name} with ${spec.maxArgs + 1} arguments`);
    }
  }
  // Within the arity, the handler runs.
  const rec = recordingContext({ authenticated: true, subscribed: false });
  run(rec, 'PING');
  assert.deepEqual(rec.replies, [PONG]);
});

test('dispatch before AUTH: only AUTH, HELLO and QUIT run; anything else, even unknown, is NOAUTH and counted', () => {
  const rec = recordingContext({ authenticated: false, subscribed: false });
  for (const words of [['PING'], ['PUBLISH', 't', 'x'], ['NOSUCHCOMMAND'], ['RESERVE']]) run(rec, ...words);
  assert.deepEqual(rec.replies, Array(4).fill('-NOAUTH Authentication required.'));
  assert.deepEqual(rec.refusals, Array(4).fill('unauthorized'));
  run(rec, 'QUIT');
  assert.equal(rec.quits, 1);
  rec.replies.length = 0;
  run(rec, 'AUTH'); // allowed, so the arity is checked next
  assert.deepEqual(rec.replies, ["-ERR wrong number of arguments for 'auth' command"]);
});

test('dispatch in stream mode: the subscribed form runs, with its own arity; other commands are refused', () => {
  const rec = recordingContext({ authenticated: true, subscribed: true });
  run(rec, 'PING', 'a', 'b'); // subscribed PING takes anything and answers PONG
  run(rec, 'ACK', 'x'); // subscribed ACK takes no argument
  run(rec, 'TOUCH', 'topic', '1');
  run(rec, 'PUBLISH', 't', 'x');
  run(rec, 'nosuch');
  assert.deepEqual(rec.replies, [
    PONG,
    "-ERR wrong number of arguments for 'ack' command",
    "-ERR wrong number of arguments for 'touch' command",
    "-ERR only ACK, NACK, BACK, DACK, TOUCH, PING and QUIT are allowed while subscribed, got 'PUBLISH'",
    "-ERR only ACK, NACK, BACK, DACK, TOUCH, PING and QUIT are allowed while subscribed, got 'NOSUCH'",
  ]);
  run(rec, 'QUIT', 'x');
  assert.equal(rec.quits, 1);
});

test('MQ_ERR_BUSY_SUBSCRIBED and its README row list exactly the commands the table allows while subscribed', () => {
  const allowed = [...COMMANDS].filter(([, spec]) => spec.whileSubscribed !== null).map(([name]) => name);
  const listedIn = (text: string): string[] => [...text.matchAll(/\b[A-Z]{3,}\b/g)].map((m) => m[0]).filter((w) => COMMANDS.has(w));
  assert.deepEqual(listedIn(ALLOWED_WHILE_SUBSCRIBED), allowed);
  assert.ok(allowed.includes('TOUCH'));
  const rec = recordingContext({ authenticated: true, subscribed: true });
  run(rec, 'STATS', 't');
  assert.equal(rec.replies.length, 1);
  assert.deepEqual(listedIn(String(rec.replies[0]).replace(/got '.*$/, '')), allowed);
  const row = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8').split('\n').find((line) => line.startsWith('| `MQ_ERR_BUSY_SUBSCRIBED` |'));
  assert.ok(row !== undefined, 'README row of MQ_ERR_BUSY_SUBSCRIBED');
  assert.deepEqual(listedIn(row.split('|')[4]!).sort(), [...allowed].sort(), row);
});

test('issue 13 finding 3: dispatch while the log is replayed: queue commands and PING get -LOADING, connection commands run; unknown and arity errors come first', () => {
  const rec = recordingContext({ authenticated: true, subscribed: false, loading: true });
  const loading = '-LOADING miniqueue is replaying its log, try again shortly';
  const refused = ['PUBLISH', 'RESERVE', 'ACK', 'NACK', 'BACK', 'DACK', 'TOUCH', 'SUBSCRIBE', 'TOPICS', 'DEL', 'PURGE', 'STATS', 'PING'];
  for (const name of refused) {
    const spec = COMMANDS.get(name)!;
    assert.equal(spec.allowedWhileLoading, false, name);
    run(rec, name, ...Array<string>(spec.minArgs - 1).fill('1'));
  }
  assert.deepEqual(rec.replies, Array(refused.length).fill(loading), 'the handler never ran (the queue proxy would throw)');
  const allowed = [...COMMANDS].filter(([, spec]) => spec.allowedWhileLoading).map(([name]) => name).sort();
  assert.deepEqual(allowed, ['AUTH', 'CLIENT', 'COMMAND', 'ECHO', 'HELLO', 'INFO', 'QUIT', 'READONLY', 'READWRITE', 'RESET', 'SELECT']);
  rec.replies.length = 0;
  run(rec, 'ECHO', 'hi');
  run(rec, 'QUIT');
  run(rec, 'NOSUCH');
  run(rec, 'PUBLISH', 'only-a-topic');
  assert.deepEqual(rec.replies, [
    Buffer.from('$2\r\nhi\r\n'),
    "-ERR unknown command 'NOSUCH', with args beginning with: ",
    "-ERR wrong number of arguments for 'publish' command",
  ]);
  assert.equal(rec.quits, 1);
});

test('dispatch: an unknown command quotes its name and first three arguments, printable only', () => {
  const rec = recordingContext({ authenticated: true, subscribed: false });
  run(rec, 'FOO\x01', 'a', 'b\r\n', 'c', 'd');
  assert.deepEqual(rec.replies, ["-ERR unknown command 'FOO?', with args beginning with: 'a' 'b??' 'c'"]);
});

// ---- against a real server ----------------------------------------------------------------

function assertArityError(r: Reply, name: string, sent: string): void {
  assert.ok(isErrorReply(r), `${sent}: expected an error, got ${describeReply(r)}`);
  assert.equal(r.line, `ERR wrong number of arguments for '${name.toLowerCase()}' command`, sent);
}

test('a real server answers the arity error at exactly the bounds the table declares', async (t) => {
  const dir = tempDir('mq-command-table-');
  const server = await startInProcess(dir, []);
  const c = await RespConn.connect(server.resp!.port);
  t.after(async () => {
    c.close();
    await server.close();
    removeDir(dir);
  });
  for (const [name, spec] of COMMANDS) {
    if (spec.minArgs > 1) {
      const args = [name, ...Array<string>(spec.minArgs - 2).fill('arity.t')];
      assertArityError(await c.send(...args), name, args.join(' '));
    }
    if (spec.maxArgs !== Infinity) {
      const args = [name, ...Array<string>(spec.maxArgs).fill('arity.t')];
      assertArityError(await c.send(...args), name, args.join(' '));
    }
  }
  // And in stream mode, the subscribed forms' bounds.
  assert.equal(await c.send('PING'), 'PONG');
  await c.write(encodeCommand(['SUBSCRIBE', 'arity.stream'])); // no reply until a message comes
  for (const [name, spec] of COMMANDS) {
    const f = spec.whileSubscribed;
    if (f === null || f.maxArgs === Infinity) continue;
    const args = [name, ...Array<string>(f.maxArgs).fill('1')];
    assertArityError(await c.send(...args), name, `subscribed ${args.join(' ')}`);
  }
});
