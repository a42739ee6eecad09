export {
  createCertificateAuthority,
  createSelfSignedCertificate,
  type CertificateAuthority,
  type CertificateOptions,
  type GeneratedCertificate,
} from './certificate.js';
