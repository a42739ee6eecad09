export {
  createCertificateAuthority,
  createSelfSignedCertificate,
  type CertificateAuthority,
  type CertificateOptions,
  type GeneratedCertificate,
} from './certificate.js';
export {
  CertificatePinError,
  certificateFingerprints,
  checkPinnedPeer,
  createPinnedIdentityCheck,
  fingerprintDigests,
  formatFingerprint,
  parseFingerprint,
  type CertificateFingerprints,
  type CertificateSource,
  type Fingerprint,
} from './fingerprint.js';
