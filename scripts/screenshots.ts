/**
 * `npm run screenshots`: play a short real session in Chromium and write the web client's screenshots to
 * docs/images/. Starts the real server in this process with the shipped models (an i-CLEVR session: the
 * models/iclevr-default checkpoint, 64x64; `--model DIR` for another, `--tiny` for the test harness's untrained tiny
 * model), a temp database, and two browser contexts (teller and drawer) plus a phone-width observer.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { makeConfig } from '../src/config/index.js';
import { startApp } from '../src/server/app.js';
import { launchBrowser } from '../test/browser/browser.js';
import { startTestServer } from '../test/server/harness.js';

const OUT = path.resolve('docs/images');
const WAIT = 300_000;
const args = process.argv.slice(2);
const modelFlag = args.indexOf('--model');
const modelPath = modelFlag >= 0 ? args[modelFlag + 1] : undefined;

const TURNS = [
  'Add a blue cube at the center.',
  'Add a red sphere behind and to the left of the blue cube.',
  'Add a green cylinder in front of and to the right of the blue cube.',
];
const BRANCH = 'Add a yellow sphere to the right of the blue cube.';

function say(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

async function startServer(): Promise<{ origin: string; stop(): Promise<void> }> {
  if (args.includes('--tiny')) {
    const s = await startTestServer({ defaultSteps: 12 });
    return { origin: s.origin, stop: () => s.stop() };
  }
  // Plain sampling, 30 steps: a shared 2-core machine finishes the session in a few minutes (the model's own
  // defaults, best of 4 at 50 steps, take about 8x the work per turn).
  const config = makeConfig({
    host: '127.0.0.1',
    port: 0,
    dataDir: fs.mkdtempSync(path.join(os.tmpdir(), 'codraw-shots-')),
    ...(modelPath ? { modelPath } : {}),
    previewEvery: 2,
    defaultSteps: 30,
    defaultCandidates: 1,
  });
  const app = await startApp({ config });
  return { origin: app.origin, stop: () => app.drain() };
}

/** Wait until the canvas shows a stored image other than `not` (a finished turn), and return its id. */
async function finished(page: Page, not: Set<string>): Promise<string> {
  const deadline = Date.now() + WAIT;
  for (;;) {
    const img = page.getByTestId('canvas');
    const kind = await img.getAttribute('data-kind');
    const id = await img.getAttribute('data-image-id');
    if (kind === 'canvas' && id && !not.has(id)) return id;
    const failed = page.locator('[data-testid="turn"][data-status="FAILED"]');
    if ((await failed.count()) > 0) throw new Error(`a turn failed: ${await failed.last().textContent()}`);
    if (Date.now() > deadline) throw new Error('timed out waiting for a turn to finish');
    await page.waitForTimeout(200);
  }
}

async function main(): Promise<void> {
  fs.mkdirSync(OUT, { recursive: true });
  const server = await startServer();
  const browser = await launchBrowser();
  try {
    const desktop = { viewport: { width: 1280, height: 900 }, colorScheme: 'light' as const };
    const teller = await (await browser.newContext(desktop)).newPage();
    const drawer = await (await browser.newContext(desktop)).newPage();
    for (const p of [teller, drawer]) p.setDefaultTimeout(WAIT);

    await teller.goto(`${server.origin}/`);
    await teller.getByTestId('engine-status').getByText('Turn defaults').waitFor();
    await teller.getByLabel('Title').fill('Blocks');
    await teller.getByLabel('Your name').fill('Tess');
    await teller.screenshot({ path: path.join(OUT, 'web-start.png') });
    await teller.getByRole('button', { name: 'Create session' }).click();
    await teller.waitForURL(/\/s\//);
    const drawerLink = await teller.getByTestId('link-drawer').inputValue();
    const observerLink = await teller.getByTestId('link-observer').inputValue();

    await drawer.goto(drawerLink);
    await drawer.getByLabel('Your name').fill('Drew');
    await drawer.getByRole('button', { name: 'Join as drawer' }).click();
    await drawer.waitForURL(/\/s\//);
    await teller.locator('[data-testid="participants"] li[data-online="true"]', { hasText: 'Drew' }).waitFor();

    // An observer on a phone.
    const phone = await (await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, colorScheme: 'light' })).newPage();
    phone.setDefaultTimeout(WAIT);
    await phone.goto(observerLink);
    await phone.getByLabel('Your name').fill('Obi');
    await phone.getByRole('button', { name: 'Join as observer' }).click();
    await phone.waitForURL(/\/s\//);
    await phone.getByTestId('canvas').waitFor();

    const seen = new Set<string>([await finished(teller, new Set())]);
    for (const [i, text] of TURNS.entries()) {
      say(`turn ${i + 1}: ${text}`);
      await teller.getByLabel('Instruction').fill(text);
      await teller.getByLabel('Instruction').press('Enter');
      if (i === TURNS.length - 1) {
        // Mid-denoising, as the observer's phone and the drawer see it.
        const midway = (p: Page) =>
          p.waitForFunction(() => Number(document.querySelector<HTMLImageElement>('img[data-kind="preview"]')?.dataset.sequence ?? 0) >= 6);
        await midway(phone);
        await phone.screenshot({ path: path.join(OUT, 'web-phone.png') });
        await midway(drawer);
        await drawer.screenshot({ path: path.join(OUT, 'web-drawer-live.png') });
      }
      const id = await finished(teller, seen);
      seen.add(id);
      await drawer.locator(`img[data-testid="canvas"][data-image-id="${id}"]`).waitFor();
      if (i === 0) {
        await drawer.getByRole('textbox', { name: 'Message' }).fill('Nice. Where does the next one go?');
        await drawer.getByRole('textbox', { name: 'Message' }).press('Enter');
        await teller.getByTestId('messages').getByText('Where does the next one go?').waitFor();
        await teller.getByRole('textbox', { name: 'Message' }).fill('Behind it, on the left.');
        await teller.getByRole('textbox', { name: 'Message' }).press('Enter');
      }
    }
    // Undo the last turn and branch from turn 2.
    say('revert to turn 2, then branch');
    await teller.getByRole('button', { name: 'Revert to turn 2' }).click();
    await teller.locator('[data-testid="turn"][data-turn-index="2"][aria-current="step"]').waitFor();
    await teller.getByLabel('Instruction').fill(BRANCH);
    await teller.getByLabel('Instruction').press('Enter');
    seen.add(await finished(teller, seen));
    await drawer.getByRole('textbox', { name: 'Message' }).fill('Looks right to me.');
    await drawer.getByRole('textbox', { name: 'Message' }).press('Enter');
    await teller.getByTestId('pending-replies').waitFor();
    await teller.screenshot({ path: path.join(OUT, 'web-teller.png'), fullPage: true });

    say(`wrote ${['web-start', 'web-drawer-live', 'web-teller', 'web-phone'].map((n) => `docs/images/${n}.png`).join(', ')}`);
  } finally {
    await browser.close();
    await server.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
