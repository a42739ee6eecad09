import { createSelfSignedCertificate, type GeneratedCertificate } from '../../lib/certs/index.js';

let certificate: GeneratedCertificate | undefined;
/** One self-signed certificate (localhost, 127.0.0.1) per spec file: making one costs a key generation. */
export function testCertificate(): GeneratedCertificate {
  certificate ??= createSelfSignedCertificate({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1'] });
  return certificate;
}
