/** The validated `SampleConfig` of this process. */
export const SAMPLE_CONFIG = 'sample:CONFIG';
/** The demo HTTP target (client side), listening before the app starts. */
export const SAMPLE_TARGET = 'sample:TARGET';
