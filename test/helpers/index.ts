/**
 * The one entry to the shared test helpers (one file per concept below). Tests import from here;
 * fixtures that serve one test file only stay in that file.
 *
 * - assertions.ts: throwsCode / rejectsCode (error codes, never message text)
 * - broker.ts: an embedded Broker on a temp directory, consumers through the engine seam
 * - certs.ts: development certificates for TLS tests
 * - data-dirs.ts: a data directory with known contents written by a real server
 * - engine-targets.ts: a real server per engine (log, or a gateway on the file's NATS cluster) for the suites run on both
 * - http2-client.ts: h2request, h2connect, the subscribe-stream client H2Subscriber
 * - log-files.ts: records written and read back, segment files scanned, directories hashed
 * - loggers.ts: silentLogger, recordingLogger
 * - mini-resp-client.ts: a pipelining RESP client that tells exactly which commands were answered
 * - processes.ts: the real CLI (runMain), curl, any command
 * - random.ts: seeded prng, randInt
 * - resp-client.ts: RespConn (every reply and byte kept), encodeCommand, parseReply, statsOf
 * - servers.ts: startInProcess, startChild (a real server as a child process), its log lines
 * - temp-dirs.ts: tempDir, tempDirFor (removed after the test), removeDir
 * - tmpfs.ts: a small tmpfs to fill up (root only)
 * - waiting.ts: waitFor a condition, one event-loop turn, letTimePass (only where time is the subject)
 */
export * from './assertions.js';
export * from './broker.js';
export * from './certs.js';
export * from './data-dirs.js';
export * from './engine-targets.js';
export * from './http2-client.js';
export * from './log-files.js';
export * from './loggers.js';
export * from './mini-resp-client.js';
export * from './processes.js';
export * from './random.js';
export * from './resp-client.js';
export * from './servers.js';
export * from './temp-dirs.js';
export * from './tmpfs.js';
export * from './waiting.js';
export * from './ports.js';
