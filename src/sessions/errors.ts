/**
 * Errors of the domain, each with a stable code that the GraphQL layer copies into `extensions.code`.
 * They are thrown before anything is written (or inside a transaction that then rolls back).
 */
export type DomainErrorCode =
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'BAD_USER_INPUT'
  | 'TEXT_TOO_LONG'
  | 'QUEUE_FULL'
  | 'RATE_LIMITED'
  | 'INVALID_STATE';

export class DomainError extends Error {
  override name = 'DomainError';
  constructor(
    readonly code: DomainErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}
