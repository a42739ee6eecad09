/** Two keys that pass the strength check (32 characters each), shared by the auth specs. */
export const KEY_A = 'Zr8v1Qm3pXk7TnW2cJ9yLd4Hs6Bf0AeU';
export const KEY_B = 'q2W9e8R7t6Y5u4I3o2P1a0SdFgHjKlZx';

/** What `fn` throws (undefined if it returns), for matching on its fields. */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}
