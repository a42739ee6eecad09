/** An error's message with its code, for the messages of typed errors. */
export function describeError(error: unknown): string {
  if (error && typeof error === 'object' && 'message' in error) {
    const code = 'code' in error && error.code ? ` (${String(error.code)})` : '';
    return `${String(error.message)}${code}`;
  }
  return String(error);
}
