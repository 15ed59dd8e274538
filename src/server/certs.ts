/**
 * The TLS certificate and key for the HTTP/2 listener (SPEC §1 `--cert`, `--key`).
 *
 * Named files are only read. The default files are generated on first start with selfsigned
 * when both are missing, so `npm start` works out of the box without committing a private key.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { makeDirectory } from '../log/files.js';
import { ConfigError, type Config } from './config.js';
import type { Logger } from './logger.js';

/** Validity of a generated development certificate. */
const DEV_CERT_VALID_DAYS = 365;
/** Backdating the start a little keeps a client with a slightly slow clock from rejecting a fresh certificate. */
const DEV_CERT_BACKDATE_MS = 5 * 60_000;

/** PEM bytes of a certificate and its private key, freshly read or generated; the caller owns both Buffers. */
export interface CertPair {
  readonly cert: Buffer;
  readonly key: Buffer;
}

/**
 * Returns the PEM certificate and key to serve TLS with.
 *
 * - Both files exist: they are read and checked to parse and to belong together.
 * - `certExplicit` (`--cert` or `--key` given) and a file is missing: nothing is generated.
 * - Neither flag given and both files missing: a self-signed certificate is generated — EC P-256,
 *   SHA-256, CN=localhost, subjectAltName DNS:localhost, IP:127.0.0.1, IP:::1, valid 365 days,
 *   serverAuth — the missing directories are created (`mkdir -p`), the key is written with mode
 *   0600 and the certificate 0644 (each through a temporary file and a rename, so a crash never
 *   leaves half a PEM), and a warning "generated a self-signed development certificate" is logged
 *   with `cert` and `key` paths.
 * - Neither flag given and only one of the two exists: an error rather than overwriting it.
 *
 * Usable outside the server (e.g. `scripts/gen-certs.mjs`) with `{ certPath, keyPath, certExplicit: false }`.
 *
 * @param config - `certPath`, `keyPath` (absolute or relative to cwd) and `certExplicit`.
 * @param log - receives the warning (and one for an expired certificate).
 * @throws ConfigError (`option` `--cert` or `--key`) naming the path when a file is missing,
 *   unreadable, not valid PEM, or the key does not match the certificate.
 * @throws ConfigError (`--key` or `--cert`) naming the path when a generated file cannot be written.
 */
export async function ensureDevCert(
  config: Pick<Config, 'certPath' | 'keyPath' | 'certExplicit'>,
  log: Pick<Logger, 'warn'>,
): Promise<CertPair> {
  const certExists = fs.existsSync(config.certPath);
  const keyExists = fs.existsSync(config.keyPath);
  if (!certExists || !keyExists) {
    const [option, missing] = certExists ? (['--key', config.keyPath] as const) : (['--cert', config.certPath] as const);
    if (config.certExplicit) {
      throw new ConfigError(option, `cannot read ${option} file ${JSON.stringify(missing)}: no such file or directory`);
    }
    if (certExists || keyExists) {
      const present = certExists ? config.certPath : config.keyPath;
      throw new ConfigError(
        option,
        `${option} file ${JSON.stringify(missing)} is missing but ${JSON.stringify(present)} exists; delete it to generate a new development certificate, or pass --cert and --key`,
      );
    }
    const pair = await generateDevCert();
    for (const [option, file, data, mode] of [
      ['--key', config.keyPath, pair.key, 0o600],
      ['--cert', config.certPath, pair.cert, 0o644],
    ] as const) {
      try {
        await writeFileAtomic(file, data, mode);
      } catch (err) {
        throw new ConfigError(option, `cannot write the generated ${option} file ${JSON.stringify(file)}: ${String(err)}; pass --cert and --key, or --no-tls`, { cause: err });
      }
    }
    log.warn(
      { cert: path.resolve(config.certPath), key: path.resolve(config.keyPath) },
      'generated a self-signed development certificate',
    );
    return pair;
  }

  const cert = await readPem('--cert', config.certPath);
  const key = await readPem('--key', config.keyPath);
  let x509: crypto.X509Certificate;
  try {
    x509 = new crypto.X509Certificate(cert);
  } catch (err) {
    throw new ConfigError('--cert', `invalid --cert file ${JSON.stringify(config.certPath)}: not a PEM certificate`, { cause: err });
  }
  let privateKey: crypto.KeyObject;
  try {
    privateKey = crypto.createPrivateKey(key);
  } catch (err) {
    throw new ConfigError('--key', `invalid --key file ${JSON.stringify(config.keyPath)}: not an unencrypted PEM private key`, { cause: err });
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new ConfigError('--key', `--key file ${JSON.stringify(config.keyPath)} does not match --cert file ${JSON.stringify(config.certPath)}`);
  }
  if (Date.parse(x509.validTo) < Date.now()) {
    log.warn(
      { cert: path.resolve(config.certPath), validTo: x509.validTo },
      'the TLS certificate has expired; delete the certificate and key to generate a new development pair',
    );
  }
  return { cert, key };
}

async function generateDevCert(): Promise<CertPair> {
  // Imported only when a certificate is generated: selfsigned and its ASN.1/X.509 dependencies are
  // ~700 KB of JavaScript that every start would otherwise compile (issue 11, restart time).
  // selfsigned is CommonJS: Node's ES import names its exports, the bundle (scripts/bundle.mjs)
  // puts them under `default`; take `generate` from either.
  const selfsigned = (await import('selfsigned')) as typeof import('selfsigned') & { default?: typeof import('selfsigned') };
  const generate = selfsigned.generate ?? selfsigned.default!.generate;
  const notBeforeDate = new Date(Date.now() - DEV_CERT_BACKDATE_MS);
  const notAfterDate = new Date(notBeforeDate.getTime() + DEV_CERT_VALID_DAYS * 24 * 3600_000);
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });
  return { cert: Buffer.from(pems.cert), key: Buffer.from(pems.private) };
}

async function readPem(option: '--cert' | '--key', file: string): Promise<Buffer> {
  try {
    return await fs.promises.readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : String(err);
    throw new ConfigError(option, `cannot read ${option} file ${JSON.stringify(file)}: ${reason}`, { cause: err });
  }
}

async function writeFileAtomic(file: string, data: Buffer, mode: number): Promise<void> {
  makeDirectory(path.dirname(path.resolve(file)));
  const temporary = `${file}.${process.pid}.tmp`;
  try {
    await fs.promises.writeFile(temporary, data, { mode, flag: 'wx' });
    // writeFile's mode is filtered by the umask; the key must be 0600 whatever the umask is.
    await fs.promises.chmod(temporary, mode);
    await fs.promises.rename(temporary, file);
  } catch (err) {
    await fs.promises.rm(temporary, { force: true });
    throw err;
  }
}
