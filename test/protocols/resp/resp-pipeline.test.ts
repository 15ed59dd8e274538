/**
 * RESP pipelining (SPEC §4 "Pipelining works") against a real in-process server: a pipeline of
 * mixed commands gets the same replies, in the same order, however the bytes are split by TCP —
 * one write, one byte per write, or two writes at every possible split point — and the same as
 * when each command is sent on its own and awaited.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { RunningServer } from '../../../src/server/server.js';
import { asReserved, describeReply, encodeCommand, removeDir, type Reply, RespConn, startInProcess, tempDir, turn } from '../../helpers/index.js';

let dir: string;
let server: RunningServer;
let port: number;
let topicSeq = 0;
/** Chunks the server's sockets have read, to check that byte-per-write sending really arrives split. */
let serverReads = 0;

before(async () => {
  dir = tempDir('mq-pipe-');
  server = await startInProcess(dir, []);
  port = server.resp!.port;
  server.resp!.server.on('connection', (socket) => socket.on('data', () => serverReads++));
});

after(async () => {
  await server.close();
  removeDir(dir);
});

const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

/** A command: multibulk arguments, or an inline line sent as is. */
type Command = (string | Buffer)[] | { inline: string };

function encode(commands: Command[]): Buffer {
  return Buffer.concat(commands.map((c) => (Array.isArray(c) ? encodeCommand(c) : Buffer.from(c.inline))));
}

/**
 * Replies in a comparable form. RESERVE ids are replaced by the name of the prelude message
 * they belong to, or `new` (ids are not predictable, but must be distinct: checked here).
 */
function normalize(replies: Reply[], known: Map<string, string>): string[] {
  const fresh = new Set<string>();
  return replies.map((r) => {
    if (Array.isArray(r) && r.length === 3 && Buffer.isBuffer(r[0])) {
      const m = asReserved(r);
      let name = known.get(m.id);
      if (name === undefined) {
        assert.ok(!fresh.has(m.id), `id ${m.id} handed out twice`);
        fresh.add(m.id);
        name = 'new';
      }
      return `[${name} ${JSON.stringify(m.payload.toString('latin1'))} ${m.dackCount}]`;
    }
    return describeReply(r);
  });
}

/** Sends `bytes` split as `splitAt` says, and collects `count` replies. */
async function run(c: RespConn, bytes: Buffer, count: number, mode: 'one' | 'bytes' | number): Promise<Reply[]> {
  const replies = c.nextN(count, 20_000);
  if (mode === 'one') {
    await c.write(bytes);
  } else if (mode === 'bytes') {
    for (let i = 0; i < bytes.length; i++) {
      await c.write(bytes.subarray(i, i + 1));
      // One turn of the loop per byte so the server reads it on its own (the server is in process).
      await turn();
    }
  } else {
    await c.write(bytes.subarray(0, mode));
    await turn();
    await c.write(bytes.subarray(mode));
  }
  return replies;
}

/** The ~50-command pipeline, given a fresh topic and three messages reserved beforehand. */
function longPipeline(topic: string, ids: [string, string, string]): Command[] {
  const [i1, i2, i3] = ids;
  const commands: Command[] = [
    ['PING'],
    ['PUBLISH', topic, Buffer.from('a\r\nb')],
    ['PUBLISH', topic, ALL_BYTES],
    ['ACK', topic, i1],
    ['NACK', topic, i2],
    ['RESERVE', topic],
    ['ECHO', Buffer.from('x\r\n$3\r\ny')],
    ['RESERVE', topic],
    ['BACK', topic, i3],
    ['RESERVE', topic],
    ['RESERVE', topic],
    ['RESERVE', topic],
    ['ACK', topic, '999999999'],
    ['PUBLISH', topic, Buffer.alloc(0)],
    ['RESERVE', topic, '0'],
    { inline: 'PING\r\n' },
    ['ACK', topic, i2],
    ['ACK', topic, i2],
    ['STATS', topic],
  ];
  for (let k = 0; k < 10; k++) {
    commands.push(['PUBLISH', topic, Buffer.from(`k${k}\r\n\0*1\r\n`, 'latin1')], ['RESERVE', topic], k % 2 === 0 ? ['PING'] : { inline: 'ping\n' });
  }
  commands.push(['DEL', topic], ['RESERVE', topic], ['PUBLISH', topic, 'after-del'], ['RESERVE', topic], ['TOPICS', 'extra-arg'], ['PING', 'end']);
  return commands;
}

const LONG_EXPECTED: string[] = [
  '+PONG',
  '+OK',
  '+OK',
  '+OK',
  '+OK',
  '[pre2 "pre2" 0]',
  '$"x\\r\\n$3\\r\\ny"',
  '[new "a\\r\\nb" 0]',
  '+OK',
  `[new ${JSON.stringify(ALL_BYTES.toString('latin1'))} 0]`,
  '[pre3 "pre3" 0]',
  'nil',
  'ERROR',
  '+OK',
  '[new "" 0]',
  '+PONG',
  '+OK',
  'ERROR',
  'STATS',
  ...Array.from({ length: 10 }, (_, k) => ['+OK', `[new ${JSON.stringify(`k${k}\r\n\0*1\r\n`)} 0]`, '+PONG']).flat(),
  ':1',
  'nil',
  '+OK',
  '[new "after-del" 0]',
  'ERROR',
  '$"end"',
];

/**
 * Error replies are compared by kind (their text names ids and topics, and is not part of the
 * contract), STATS by its values with the topic name left out.
 */
function shape(normalized: string[], topic?: string): string[] {
  return normalized.map((s) => {
    if (s.startsWith('-ERR ')) return 'ERROR';
    if (s.startsWith('[$"topic"')) return topic === undefined ? 'STATS' : s.replace(topic, 'TOPIC');
    return s;
  });
}

async function longRun(mode: 'one' | 'bytes' | 'each'): Promise<{ normalized: string[]; exact: string[]; raw: Reply[] }> {
  const topic = `pipe.long.${++topicSeq}`;
  const c = await RespConn.connect(port);
  try {
    for (const p of ['pre1', 'pre2', 'pre3']) assert.equal(await c.send('PUBLISH', topic, p), 'OK');
    const pre = [];
    for (let i = 0; i < 3; i++) pre.push(asReserved(await c.send('RESERVE', topic)));
    assert.deepEqual(pre.map((m) => m.payload.toString()), ['pre1', 'pre2', 'pre3']);
    const ids = pre.map((m) => m.id) as [string, string, string];
    const known = new Map(ids.map((id, i) => [id, `pre${i + 1}`]));
    const commands = longPipeline(topic, ids);
    let replies: Reply[];
    if (mode === 'each') {
      replies = [];
      for (const cmd of commands) {
        const r = c.next();
        await c.write(encode([cmd]));
        replies.push(await r);
      }
    } else {
      replies = await run(c, encode(commands), commands.length, mode);
    }
    const normalized = normalize(replies, known);
    return { normalized: shape(normalized), exact: shape(normalized, topic), raw: replies };
  } finally {
    c.close();
  }
}

test('a pipeline of ~50 mixed commands gets the expected replies, in order, when sent in one write', async () => {
  const { normalized, raw } = await longRun('one');
  assert.deepEqual(normalized, LONG_EXPECTED);
  const stats = raw[18] as Reply[];
  const map = new Map<string, Reply>();
  for (let i = 0; i < stats.length; i += 2) map.set(String(stats[i]), stats[i + 1]!);
  // pre1 and pre2 acked; pre3, 'a\r\nb', ALL_BYTES and '' in flight on this connection.
  assert.equal(map.get('acked'), 2);
  assert.equal(map.get('ready'), 0);
  assert.equal(map.get('inFlight'), 4);
  assert.equal(map.get('published'), 6);
});

test('the same pipeline sent one byte per write gets identical replies', async () => {
  const one = await longRun('one');
  const readsBefore = serverReads;
  const bytes = await longRun('bytes');
  assert.deepEqual(bytes.exact, one.exact);
  const length = encode(longPipeline('x', ['1', '2', '3'])).length;
  assert.ok(serverReads - readsBefore >= length * 0.9, `the server read ${serverReads - readsBefore} chunks for ~${length} bytes`);
});

test('the same commands sent one at a time, each awaited, get identical replies', async () => {
  const one = await longRun('one');
  const each = await longRun('each');
  assert.deepEqual(each.exact, one.exact);
});

test('a short pipeline split in two at every byte boundary gets identical replies (fresh connection and topic each)', async () => {
  const build = (topic: string): Command[] => [
    ['PUBLISH', topic, Buffer.from('p\r\n1')],
    ['PUBLISH', topic, Buffer.from([0, 255, 13, 10, 36])],
    ['RESERVE', topic],
    { inline: 'PING\r\n' },
    ['RESERVE', topic, '0'],
    ['ECHO', Buffer.from('\r\n')],
    ['ACK', topic, '1x'],
    ['RESERVE', topic],
  ];
  const expected = ['+OK', '+OK', '[new "p\\r\\n1" 0]', '+PONG', `[new ${JSON.stringify(Buffer.from([0, 255, 13, 10, 36]).toString('latin1'))} 0]`, '$"\\r\\n"', 'ERROR', 'nil'];
  const length = encode(build(`pipe.s.${'0'.repeat(6)}`)).length;
  for (let split = 0; split <= length; split++) {
    // Topic names of one width keep every run's bytes the same length.
    const topic = `pipe.s.${String(++topicSeq).padStart(6, '0')}`;
    const bytes = encode(build(topic));
    assert.equal(bytes.length, length);
    const c = await RespConn.connect(port);
    try {
      const replies = await run(c, bytes, 8, split);
      assert.deepEqual(shape(normalize(replies, new Map())), expected, `split at byte ${split}`);
    } finally {
      c.close();
    }
  }
});
