/**
 * Import rules of the layers (ARCHITECTURE.md, issue 12 "Done when"): a protocol adapter reaches
 * the queues only through the engine seam (src/engine/) and the error table (src/errors.ts), never
 * src/broker/, so a second engine (issue 15) plugs in without touching a protocol file.
 *
 * Each rule names the source files it covers and the import targets they may use; every
 * `import … from`, `export … from`, bare `import '…'` and `import('…')` of those files is checked
 * (type-only imports too: they tie the adapter to the broker's types all the same).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from './helpers/index.js';

/** Which files a rule covers, what they may import, and what they must never import. */
interface ImportRule {
  name: string;
  /** Source files covered: repository-relative paths with `/`, a trailing `/` meaning a folder. */
  covers: readonly string[];
  /** Allowed targets: repository paths (trailing `/`: a folder) and package names (`node:` = every builtin). */
  allowed: readonly string[];
  /** Targets named in the failure as the reason for the rule (a subset of what is not allowed). */
  forbidden: readonly string[];
}

const RULES: readonly ImportRule[] = [
  {
    name: 'the HTTP adapter talks to the engine seam only (issue 12)',
    covers: ['src/protocols/http2/'],
    allowed: ['src/protocols/http2/', 'src/protocols/admission.ts', 'src/engine/', 'src/errors.ts', 'src/package-root.ts', 'node:', 'fastify', 'pino', 'prom-client'],
    forbidden: ['src/broker/', 'src/log/', 'src/server/'],
  },
  {
    name: 'metrics and dashboard data read the engine seam only (issue 12)',
    covers: ['src/server/metrics.ts', 'src/server/dashboard-data.ts'],
    allowed: ['src/server/', 'src/protocols/admission.ts', 'src/protocols/http2/', 'src/engine/', 'src/errors.ts', 'src/package-root.ts', 'node:', 'fastify', 'pino', 'prom-client'],
    forbidden: ['src/broker/', 'src/log/'],
  },
  {
    name: 'the RESP adapter talks to the engine seam only (issue 12)',
    covers: ['src/protocols/resp/'],
    allowed: ['src/protocols/resp/', 'src/protocols/admission.ts', 'src/engine/', 'src/errors.ts', 'node:', 'pino'],
    forbidden: ['src/broker/', 'src/log/', 'src/server/'],
  },
];

/** One import of a source file: the specifier as written, where it points, and its line. */
interface ImportSite {
  specifier: string;
  /** A repository-relative `.ts` path for a relative specifier, else the package name (or `node:`). */
  target: string;
  line: number;
}

const IMPORT_PATTERN = /\b(?:import|export)\s[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]|\bimport\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g;

/** The imports of `source`, a file at repository path `file`. */
function importsOf(file: string, source: string): ImportSite[] {
  const sites: ImportSite[] = [];
  for (const match of source.matchAll(IMPORT_PATTERN)) {
    const specifier = (match[1] ?? match[2] ?? match[3])!;
    const line = source.slice(0, match.index).split('\n').length;
    let target: string;
    if (specifier.startsWith('.')) {
      target = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier)).replace(/\.js$/, '.ts');
    } else if (specifier.startsWith('node:')) {
      target = 'node:';
    } else {
      // The package name: `pino`, `@scope/name`, without a subpath.
      const parts = specifier.split('/');
      target = specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
    }
    sites.push({ specifier, target, line });
  }
  return sites;
}

function matches(target: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => (p.endsWith('/') ? target.startsWith(p) : target === p));
}

/** `file:line imports 'specifier'` for each import of `source` that `rule` does not allow. */
function violations(rule: ImportRule, file: string, source: string): string[] {
  const found: string[] = [];
  for (const site of importsOf(file, source)) {
    if (matches(site.target, rule.allowed)) continue;
    const why = matches(site.target, rule.forbidden) ? ' (forbidden)' : ' (not in the allowed list)';
    found.push(`${file}:${site.line} imports '${site.specifier}' -> ${site.target}${why}`);
  }
  return found;
}

/** Repository-relative paths of the `.ts` files a rule covers. */
function coveredFiles(rule: ImportRule): string[] {
  const files: string[] = [];
  const walk = (rel: string): void => {
    const full = path.join(ROOT, rel);
    if (!fs.statSync(full).isDirectory()) {
      if (rel.endsWith('.ts')) files.push(rel);
      return;
    }
    for (const entry of fs.readdirSync(full)) walk(path.posix.join(rel, entry));
  };
  for (const c of rule.covers) walk(c.replace(/\/$/, ''));
  return files.sort();
}

describe('import rules (ARCHITECTURE.md)', () => {
  for (const rule of RULES) {
    it(rule.name, () => {
      const files = coveredFiles(rule);
      assert.ok(files.length >= rule.covers.length, `the rule covers real files: ${files.join(', ')}`);
      let imports = 0;
      const found: string[] = [];
      for (const file of files) {
        const source = fs.readFileSync(path.join(ROOT, file), 'utf8');
        imports += importsOf(file, source).length;
        found.push(...violations(rule, file, source));
      }
      assert.ok(imports >= 2 * files.length, `imports were found (${imports} in ${files.length} files)`);
      assert.deepEqual(found, [], `imports outside the rule:\n${found.join('\n')}`);
    });
  }

  it('the checker sees every import form, type-only and re-exports included', () => {
    const rule = RULES[0]!;
    const file = 'src/protocols/http2/x.ts';
    const source = [
      "import type { Broker } from '../../broker/broker.js';",
      "import {\n  Consumer,\n  type Message,\n} from '../../broker/consumer.js';",
      "export { payloadOf } from '../../broker/message.js';",
      "import '../../log/segment.js';",
      "const m = await import('../../server/config.js');",
      "import { QueueEngine } from '../../engine/queue-engine.js';",
      "import { BrokerError } from '../../errors.js';",
      "import http2 from 'node:http2';",
      "import type { Logger } from 'pino';",
      "import Fastify from 'fastify';",
      "import { SubscribeStream } from './subscribe-stream.js';",
      "import { Admission } from '../admission.js';",
      "import { ReplyQueue } from '../resp/reply-queue.js';",
      "import yargs from 'yargs/helpers';",
    ].join('\n');
    assert.deepEqual(violations(rule, file, source), [
      "src/protocols/http2/x.ts:1 imports '../../broker/broker.js' -> src/broker/broker.ts (forbidden)",
      "src/protocols/http2/x.ts:2 imports '../../broker/consumer.js' -> src/broker/consumer.ts (forbidden)",
      "src/protocols/http2/x.ts:6 imports '../../broker/message.js' -> src/broker/message.ts (forbidden)",
      "src/protocols/http2/x.ts:7 imports '../../log/segment.js' -> src/log/segment.ts (forbidden)",
      "src/protocols/http2/x.ts:8 imports '../../server/config.js' -> src/server/config.ts (forbidden)",
      "src/protocols/http2/x.ts:16 imports '../resp/reply-queue.js' -> src/protocols/resp/reply-queue.ts (not in the allowed list)",
      "src/protocols/http2/x.ts:17 imports 'yargs/helpers' -> yargs (not in the allowed list)",
    ]);
  });

  it('the RESP rule refuses the broker, the log and the HTTP adapter, and allows the seam', () => {
    const rule = RULES.find((r) => r.covers.includes('src/protocols/resp/'))!;
    const file = 'src/protocols/resp/x.ts';
    const source = [
      "import type { Broker, SettleKind } from '../../broker/broker.js';",
      "import { isValidTopicName } from '../../broker/topic-name.js';",
      "import { LogWriter } from '../../log/log-writer.js';",
      "import { startHttp2Listener } from '../http2/server.js';",
      "import { StreamConsumer } from '../../engine/stream-consumer.js';",
      "import type { ConsumerHandle, QueueEngine } from '../../engine/queue-engine.js';",
      "import { BrokerError } from '../../errors.js';",
      "import type { Admission } from '../admission.js';",
      "import { ReplyQueue } from './reply-queue.js';",
      "import type { Socket } from 'node:net';",
      "import type { Logger } from 'pino';",
      "import Fastify from 'fastify';",
    ].join('\n');
    assert.deepEqual(violations(rule, file, source), [
      "src/protocols/resp/x.ts:1 imports '../../broker/broker.js' -> src/broker/broker.ts (forbidden)",
      "src/protocols/resp/x.ts:2 imports '../../broker/topic-name.js' -> src/broker/topic-name.ts (forbidden)",
      "src/protocols/resp/x.ts:3 imports '../../log/log-writer.js' -> src/log/log-writer.ts (forbidden)",
      "src/protocols/resp/x.ts:4 imports '../http2/server.js' -> src/protocols/http2/server.ts (not in the allowed list)",
      "src/protocols/resp/x.ts:12 imports 'fastify' -> fastify (not in the allowed list)",
    ]);
  });
});
