/** The validated `SampleConfig` of this process. */
export const SAMPLE_CONFIG = 'sample:CONFIG';
/** The `TunnelTlsMaterial` (certificate, CA, hostname) of this process. */
export const SAMPLE_TLS = 'sample:TLS';
/** The `TunnelEndpoints` registry: where each side dials. */
export const SAMPLE_ENDPOINTS = 'sample:ENDPOINTS';
