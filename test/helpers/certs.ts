/** Development certificates for TLS tests. */
import path from 'node:path';
import { ensureDevCert, type CertPair } from '../../src/server/certs.js';

/** A self-signed localhost certificate generated into `dir`/certs. */
export function devCert(dir: string): Promise<CertPair> {
  return ensureDevCert(
    { certPath: path.join(dir, 'certs', 'cert.pem'), keyPath: path.join(dir, 'certs', 'key.pem'), certExplicit: false },
    { warn: () => {} },
  );
}
