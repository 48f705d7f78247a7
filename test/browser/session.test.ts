/**
 * The web client in a real Chromium against the real test server (tiny real model, real SQLite, graphql-ws):
 * a teller and a drawer in two browser contexts draw together; an observer watches; refusals are shown.
 * Every wait is on a condition in the page, with room for a loaded 2-core machine.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page, WebSocketRoute } from 'playwright-core';
import { startTestServer, type TestServer } from '../server/harness.js';
import { canvasHistory, launchBrowser, recordCanvas } from './browser.js';

const WAIT = 90_000;
const MAX_TEXT = 120;

let s: TestServer;
let browser: Browser;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  // 8 steps with a preview after each: enough frames to watch the denoising.
  s = await startTestServer({ defaultSteps: 8, limits: { maxTextLength: MAX_TEXT } });
  browser = await launchBrowser();
});
afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await browser?.close();
  await s?.stop();
});

async function newPage(viewport = { width: 1280, height: 900 }): Promise<Page> {
  const context = await browser.newContext({ viewport });
  contexts.push(context);
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  await recordCanvas(page);
  // Nothing outside the server: fail on any request elsewhere (fonts, CDNs).
  await page.route(
    (url) => url.origin !== s.origin && !url.protocol.startsWith('data') && !url.protocol.startsWith('blob'),
    (route) => {
      externalRequests.push(route.request().url());
      return route.abort();
    },
  );
  return page;
}
const externalRequests: string[] = [];

async function joinFromLink(link: string, name: string, viewport?: { width: number; height: number }): Promise<Page> {
  const page = await newPage(viewport);
  await page.goto(link);
  await page.getByLabel('Your name').fill(name);
  await page.getByRole('button', { name: /^Join as/ }).click();
  await page.waitForURL(/\/s\//);
  await page.getByTestId('canvas').waitFor();
  return page;
}

/** The image id the canvas shows once it shows a stored image (not a preview). */
const shownImage = (page: Page): Promise<string | null> => page.getByTestId('canvas').getAttribute('data-image-id');

async function waitForImage(page: Page, predicate: (id: string | null) => boolean, what: string): Promise<string> {
  const deadline = Date.now() + WAIT;
  for (;;) {
    const kind = await page.getByTestId('canvas').getAttribute('data-kind');
    const id = kind === 'canvas' ? await shownImage(page) : null;
    if (id && predicate(id)) return id;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; canvas shows ${kind} ${id}`);
    await page.waitForTimeout(100);
  }
}

const turnCard = (page: Page, index: number) => page.locator(`[data-testid="turn"][data-turn-index="${index}"]`);

describe('the web client in a browser', () => {
  let teller: Page;
  let drawer: Page;
  let sessionLinks: { drawer: string; observer: string };
  const drawerSockets: WebSocketRoute[] = [];
  let drawerOffline = false;

  it('a teller creates a session and a drawer joins it from the shared link', async () => {
    teller = await newPage();
    await teller.goto(`${s.origin}/`);
    await teller.getByTestId('engine-status').getByText('Turn defaults').waitFor();
    await teller.getByLabel('Title').fill('Blocks');
    await teller.getByLabel('Your name').fill('Tess');
    await teller.getByLabel('Dataset').selectOption('iclevr');
    await teller.getByRole('button', { name: 'Create session' }).click();
    await teller.waitForURL(/\/s\//);
    sessionLinks = {
      drawer: await teller.getByTestId('link-drawer').inputValue(),
      observer: await teller.getByTestId('link-observer').inputValue(),
    };
    expect(sessionLinks.drawer).toMatch(/\/\?session=[^&]+&role=DRAWER&invite=[^&]+$/);

    // The drawer's sockets go through a route the test can cut (reconnect test below).
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    contexts.push(context);
    drawer = await context.newPage();
    drawer.setDefaultTimeout(WAIT);
    await recordCanvas(drawer);
    await drawer.routeWebSocket(/\/graphql$/, (ws) => {
      if (drawerOffline) {
        void ws.close({ code: 1013, reason: 'test: still offline' });
        return;
      }
      ws.connectToServer();
      drawerSockets.push(ws);
    });
    await drawer.goto(sessionLinks.drawer);
    await expect(drawer.getByRole('radio', { name: /drawer/ }).isChecked()).resolves.toBe(true);
    await drawer.getByLabel('Your name').fill('Drew');
    await drawer.getByRole('button', { name: 'Join as drawer' }).click();
    await drawer.waitForURL(/\/s\//);

    // Both see each other online.
    await teller.locator('[data-testid="participants"] li[data-online="true"]', { hasText: 'Drew' }).waitFor();
    await drawer.locator('[data-testid="participants"] li[data-online="true"]', { hasText: 'Tess' }).waitFor();
    await drawer.getByText('Live', { exact: true }).waitFor();
  });

  it("the drawer's message reaches the teller and goes into the next turn's text", async () => {
    await drawer.getByRole('textbox', { name: 'Message' }).fill('which side?');
    await drawer.getByRole('textbox', { name: 'Message' }).press('Enter');
    await teller.getByTestId('messages').getByText('which side?').waitFor();
    await teller.getByTestId('pending-replies').getByText('which side?').waitFor();
  });

  it('a turn streams at least two distinct previews, then the final image, in both contexts', async () => {
    const background = await waitForImage(teller, () => true, 'the background');
    expect(await waitForImage(drawer, () => true, 'the background')).toBe(background);
    await teller.getByLabel('Instruction').fill('add a red cube in the middle');
    await teller.getByLabel('Instruction').press('Enter'); // Enter submits
    const finals = await Promise.all([teller, drawer].map((p) => waitForImage(p, (id) => id !== background, 'the final image')));
    expect(finals[0]).toBe(finals[1]);
    for (const page of [teller, drawer]) {
      const shots = await canvasHistory(page);
      const previews = new Set(shots.filter((x) => x.kind === 'preview').map((x) => x.src));
      expect(previews.size, `distinct previews on the ${page === teller ? 'teller' : 'drawer'} page`).toBeGreaterThanOrEqual(2);
      for (const src of previews) expect(src).toMatch(/^data:image\/png;base64,/);
      // The last thing shown is the final image, after the previews.
      const last = shots[shots.length - 1]!;
      expect(last.kind).toBe('canvas');
      expect(last.imageId).toBe(finals[0]);
      // The image really decoded and is drawn scaled up without smoothing.
      const drawn = await page.getByTestId('canvas').evaluate((img: HTMLImageElement) => ({
        natural: img.naturalWidth,
        shown: img.getBoundingClientRect().width,
        rendering: getComputedStyle(img).imageRendering,
      }));
      expect(drawn.natural).toBeGreaterThan(0);
      expect(drawn.shown).toBeGreaterThan(drawn.natural * 4);
      expect(drawn.rendering).toBe('pixelated');
      await expect(turnCard(page, 1).getAttribute('data-status')).resolves.toBe('SUCCEEDED');
      await turnCard(page, 1).getByText('which side?').waitFor();
    }
    // The drawer reply is no longer pending.
    await expect(teller.getByTestId('pending-replies').count()).resolves.toBe(0);
  });

  it('reverting moves both back to the earlier canvas', async () => {
    const first = await waitForImage(teller, () => true, 'turn 1');
    await teller.getByLabel('Instruction').fill('add a blue sphere left of the red cube');
    await teller.getByRole('button', { name: 'Draw it' }).click();
    const second = await waitForImage(teller, (id) => id !== first, 'turn 2');
    await waitForImage(drawer, (id) => id === second, 'turn 2 on the drawer page');
    // Drawers cannot revert; the teller can.
    await expect(drawer.getByRole('button', { name: 'Revert to turn 1' }).count()).resolves.toBe(0);
    await teller.getByRole('button', { name: 'Revert to turn 1' }).click();
    for (const page of [teller, drawer]) {
      await waitForImage(page, (id) => id === first, 'the reverted canvas');
      await turnCard(page, 1).and(page.locator('[aria-current="step"]')).waitFor();
    }
    // The next turn branches from turn 1: a second strip.
    await teller.getByLabel('Instruction').fill('put a green cylinder behind it');
    await teller.getByLabel('Instruction').press('Enter');
    await waitForImage(teller, (id) => id !== first && id !== second, 'turn 3');
    await teller.getByText('Branch from #1').waitFor();
    await drawer.getByText('Branch from #1').waitFor();
    // Undo: back to the turn before the one shown.
    await teller.getByRole('button', { name: 'Undo (back to turn 1)' }).click();
    for (const page of [teller, drawer]) await waitForImage(page, (id) => id === first, 'the canvas after undo');
  });

  it('an observer has no instruction box and no chat input', async () => {
    const observer = await joinFromLink(sessionLinks.observer, 'Obi', { width: 390, height: 844 });
    await observer.getByTestId('no-composer').waitFor();
    await expect(observer.getByLabel('Instruction').count()).resolves.toBe(0);
    await expect(observer.getByRole('textbox', { name: 'Message' }).count()).resolves.toBe(0);
    await expect(observer.getByRole('button', { name: /Revert/ }).count()).resolves.toBe(0);
    await teller.locator('[data-testid="participants"] li[data-online="true"]', { hasText: 'Obi' }).waitFor();
    // The phone width lays out in one column without sideways scrolling.
    const overflow = await observer.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
  });

  it('a refused action shows the server’s message', async () => {
    await drawer.getByRole('textbox', { name: 'Message' }).fill('x'.repeat(MAX_TEXT + 10));
    await drawer.getByRole('button', { name: 'Send' }).click();
    const notice = drawer.getByRole('alert').locator('[data-code="TEXT_TOO_LONG"]');
    await notice.waitFor();
    await expect(notice.textContent()).resolves.toContain(`the limit is ${MAX_TEXT}`);
    // The text stays in the box to be shortened.
    await expect(drawer.getByRole('textbox', { name: 'Message' }).inputValue()).resolves.toHaveLength(MAX_TEXT + 10);
  });

  it('after a dropped WebSocket the client reconnects by itself and catches up', async () => {
    expect(drawerSockets.length).toBeGreaterThan(0);
    drawerOffline = true;
    for (const ws of drawerSockets.splice(0)) await ws.close({ code: 1012, reason: 'test: connection dropped' });
    await drawer.getByText(/^Reconnecting/).waitFor();
    // Said while the drawer was away: its event is missed, the catch-up after reconnecting brings it.
    await teller.getByRole('textbox', { name: 'Message' }).fill('said while you were away');
    await teller.getByRole('textbox', { name: 'Message' }).press('Enter');
    await teller.getByTestId('messages').getByText('said while you were away').waitFor();
    await expect(drawer.getByTestId('messages').getByText('said while you were away').count()).resolves.toBe(0);
    drawerOffline = false;
    await drawer.getByText('Live', { exact: true }).waitFor();
    await drawer.getByTestId('messages').getByText('said while you were away').waitFor();
    expect(drawerSockets.length).toBeGreaterThan(0);
  });

  it('made no requests outside the server', () => {
    expect(externalRequests).toEqual([]);
  });
});
