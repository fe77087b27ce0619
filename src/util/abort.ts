/**
 * The error long work throws when its `AbortSignal` fires, so that a caller
 * can tell an interruption (save what is done, exit quietly) from a failure.
 */

/** The error a loop throws when its signal fires. */
export function abortError(): Error {
  const error = new Error('interrupted');
  error.name = 'AbortError';
  return error;
}

/** Whether `error` is an {@link abortError}. */
export function isAbortError(error: unknown): boolean {
  return error instanceof Error && error.name === 'AbortError';
}
