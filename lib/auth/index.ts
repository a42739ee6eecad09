// Authentication of pooled connections (issue 13): keys, proofs and wire codecs; run by the transports when `auth` is set.
export { AuthHandshakeError, AuthRefusedError, type AuthFailure } from './errors.js';
export {
  AuthKey, ClientAuth, ServerAuth, MAX_KEYS, MIN_KEY_BYTES, MIN_KEY_ENTROPY_BITS,
  deriveKeyId, estimateEntropyBits, generateAuthKey, resolveClientAuth, resolveServerAuth,
  type AuthKeyInput, type AuthKeySpec, type ClientAuthOptions, type ServerAuthOptions,
} from './keys.js';
export {
  BINDING_BYTES, EXPORTER_LABEL, NONCE_BYTES, PROOF_BYTES,
  channelBinding, clientProof, matchClientProof, newNonce, sameBytes, serverProof, transcript,
  type AuthContext, type ProofInput,
} from './proof.js';
export { ReplayCache, ReplayWindow } from './replay.js';
export {
  TCP_AUTH_MAGIC, TCP_AUTH_VERSION, TCP_MESSAGE_BYTES, TcpAuthType, TcpClientAuth, TcpServerAuth,
  encodeAccept, encodeChallenge, encodeProof, looksLikeTcpChallenge, parseTcpAuthMessage,
  type TcpClientStep, type TcpIdFormat, type TcpParse, type TcpServerStep,
} from './tcp-wire.js';
export {
  AUTH_CHALLENGE, AUTH_HEADER, AUTH_REFUSAL, HEADER_NONCE_BYTES, HeaderClientAuth, HeaderConnectionAuth, HeaderServerAuth, MAX_HEADER_LENGTH,
  encodeAuthRequestHeader, encodeAuthResponseHeader, isAuthChallenge, parseAuthRequestHeader, parseAuthResponseHeader,
  type AuthRequestHeader, type ClientHeaderProof, type HeaderCheck, type HeaderTransport,
} from './header.js';
export { certificateIdentity, identityLabel, keyIdentity, type ClientIdentity } from './identity.js';
