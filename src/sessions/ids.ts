/** Ids, bearer tokens, invite codes and the hashes the database keeps of them. */
import crypto from 'node:crypto';

/** SHA-256 of a bearer token or invite code (the database stores only this). */
export function hashToken(token: string): string {
  return crypto.createHash('sha256').update(token).digest('hex');
}

export function newToken(): string {
  return crypto.randomBytes(32).toString('base64url');
}

export function newInviteCode(): string {
  return crypto.randomBytes(16).toString('base64url');
}

export function newId(): string {
  return crypto.randomUUID();
}

/** Hex SHA-256 of a PNG (the image's ETag, and its key in the shared latent store). */
export function sha256(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}
