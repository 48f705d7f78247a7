/// <reference lib="dom" />
// (page.evaluate and addInitScript callbacks run in the browser: they are typed with the DOM library.)
/**
 * Debian's chromium driven by playwright-core (no browser download): how the browser tests and the screenshot
 * script launch it, and a recorder of what the canvas showed.
 */
import fs from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Without the background-networking flags Chromium keeps calling home, which a closed network punishes. */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function chromiumInstalled(): boolean {
  return fs.existsSync(CHROMIUM_PATH);
}

export async function launchBrowser(): Promise<Browser> {
  if (!chromiumInstalled()) {
    throw new Error(`No browser at ${CHROMIUM_PATH}: apt-get install -y --no-install-recommends chromium (or set CHROMIUM_PATH).`);
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
}

export interface CanvasShot {
  kind: string;
  src: string;
  imageId: string | null;
}

/**
 * Record every picture the page's canvas element shows (previews and final images), from before the page's own
 * scripts run, so that frames replaced within milliseconds are still counted. Read with `canvasHistory(page)`.
 */
export async function recordCanvas(page: Page): Promise<void> {
  await page.addInitScript(() => {
    const shots: Array<{ kind: string; src: string; imageId: string | null }> = [];
    (window as unknown as { __canvasShots: typeof shots }).__canvasShots = shots;
    const look = () => {
      const img = document.querySelector<HTMLImageElement>('img[data-testid="canvas"]');
      if (!img) return;
      const shot = { kind: img.dataset.kind ?? '', src: img.getAttribute('src') ?? '', imageId: img.dataset.imageId ?? null };
      const last = shots[shots.length - 1];
      if (!last || last.src !== shot.src || last.kind !== shot.kind) shots.push(shot);
    };
    new MutationObserver(look).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['src', 'data-kind'] });
  });
}

export async function canvasHistory(page: Page): Promise<CanvasShot[]> {
  return page.evaluate(() => (window as unknown as { __canvasShots: CanvasShot[] }).__canvasShots ?? []);
}
