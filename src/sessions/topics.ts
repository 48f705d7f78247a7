/** Where the sessions part publishes (pub/sub topics) and what it retains. */

export const sessionTopic = (sessionId: string): string => `session:${sessionId}`;
export const progressTopic = (sessionId: string): string => `progress:${sessionId}`;
/** Retained latest preview of a running turn. */
export const previewKey = (turnId: string): string => `preview:${turnId}`;
/** How long a running turn's latest preview stays retained without a newer one. */
export const RETAIN_PREVIEW_MS = 10 * 60_000;
