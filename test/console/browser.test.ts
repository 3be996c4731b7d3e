import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import iconv from 'iconv-lite';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../support/bridge.ts';
import { startSshd, type SshdInstance } from '../support/sshd.ts';
import { OPERATOR, Session, startConsoleBridge, VIEWER, type ConsoleBridge } from './harness.ts';

const ARTIFACTS = join(repoRoot, 'test-artifacts/console');
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

let sshd: SshdInstance;
let bridge: ConsoleBridge;
let browser: Browser;
/** What the browser console reported: a CSP violation or a script error fails the run. */
const browserProblems: string[] = [];
let failedOutcomeExport = 0;
const ACK_TEXT =
  'document;status;message\nINV-810001;ERROR;E-42 Unknown supplier "Müller & Söhne" <script>alert(1)</script>\n';

async function newPage(width: number, height: number): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width, height }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  page.on('console', (message) => {
    if (message.type() === 'error') browserProblems.push(message.text());
  });
  page.on('pageerror', (error) => browserProblems.push(error.message));
  page.on('response', (response) => {
    if (response.status() >= 400 && !/\/console\/login$/.test(response.url()))
      browserProblems.push(`${response.status()} ${response.url()}`);
  });
  return { context, page };
}

async function signIn(page: Page, name: string, password: string): Promise<void> {
  await page.goto(`${bridge.consoleUrl}/exports`);
  await page.waitForURL(/\/console\/login/);
  await page.fill('#name', name);
  await page.fill('#password', password);
  await page.press('#password', 'Enter');
  await page.waitForURL(/\/console\/exports/);
}

async function shoot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function horizontalOverflow(page: Page): Promise<number> {
  // Strings: the test files are type-checked without the DOM library.
  return page.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth');
}

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  sshd = await startSshd({ baseDir: mkdtempSync(join(tmpdir(), 'rsb-console-browser-')) });
  bridge = await startConsoleBridge(sshd);
  for (const annotationId of [810001, 810002, 810003]) expect(await bridge.send(annotationId)).toBe(200);
  // Export 810001 was rejected by the ERP, and telling Rossum failed for good: an outcome to deliver again.
  const { ledger } = bridge.bridge;
  const [rejected] = await ledger.list({ annotationId: 810001 });
  await ledger.awaitAcks([{ mappingName: 'generic-xml', deadlineMs: 3_600_000, since: 0 }]);
  await ledger.recordAck({
    source: 'erp',
    fileName: 'ack_810001.csv',
    sha256: 'f'.repeat(64),
    convention: 'csv',
    disposition: 'matched',
    // As the ERP wrote it: windows-1252, with markup that must show as text.
    content: iconv.encode(ACK_TEXT, 'windows-1252'),
    contentEncoding: 'windows-1252',
    entries: [
      {
        index: 0,
        exportId: rejected?.id ?? 0,
        verdict: 'rejected',
        messages: [{ code: 'E-42', text: 'Unknown supplier' }],
      },
    ],
  });
  const [claimed] = await ledger.claimOutcomes('test', 60_000);
  await ledger.settleOutcome(claimed?.id ?? 0, 'test', {
    delivery: 'failed',
    error: 'Rossum answered 400: annotation is locked',
  });
  failedOutcomeExport = rejected?.id ?? 0;
  await ledger.recordAck({
    source: 'erp',
    fileName: 'ack_unknown_77.csv',
    sha256: 'a'.repeat(64),
    convention: 'csv',
    disposition: 'unmatched',
    error: 'no export named INV-77.xml',
    entries: [],
  });
  // playwright gives every launch a fresh temporary profile (its own --user-data-dir) and removes it on close.
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await bridge?.close();
  await sshd?.stop();
});

describe('the console in a real browser', () => {
  it('an operator signs in, filters by keyboard, opens an export and its file, delivers an outcome again, and sees a new export appear live', async () => {
    const { context, page } = await newPage(1280, 900);
    try {
      await page.goto(`${bridge.consoleUrl}/exports`);
      await page.waitForURL(/\/console\/login/);
      await page.fill('#name', OPERATOR.name);
      await page.fill('#password', OPERATOR.password);
      await shoot(page, 'login-1280');
      await page.press('#password', 'Enter');
      await page.waitForURL(/\/console\/exports/);
      await expect.poll(() => page.locator('#export-rows tr[data-export-id]').count()).toBe(3);
      await shoot(page, 'exports-1280');

      // Keyboard only: tab to the search field, type, submit with Enter.
      let focused = '';
      for (let presses = 0; presses < 30 && focused !== 'q'; presses++) {
        await page.keyboard.press('Tab');
        focused = await page.evaluate<string>("document.activeElement ? document.activeElement.id : ''");
      }
      expect(focused).toBe('q');
      await page.keyboard.type('INV-810002');
      await page.keyboard.press('Enter');
      await page.waitForURL(/q=INV-810002/);
      const rows = page.locator('#export-rows tr[data-export-id]');
      await expect.poll(() => rows.count()).toBe(1);
      expect(await rows.first().textContent()).toContain('INV-810002');
      await shoot(page, 'exports-filtered-1280');

      await page.selectOption('#state', 'awaiting_ack');
      await page.press('#q', 'Enter');
      await page.waitForURL(/state=awaiting_ack/);
      await expect.poll(() => rows.count()).toBe(1);

      await rows.first().locator('a').click();
      await page.waitForURL(/\/console\/exports\/\d+$/);
      const record = (await bridge.bridge.ledger.list({ annotationId: 810002 }))[0];
      const detail = await page.locator('main').textContent();
      expect(detail).toContain(record?.sha256 ?? 'missing');
      expect(detail).toContain('Webhook received, file rendered');
      expect(detail).toContain('Uploaded');
      expect(detail).toContain(record?.remotePath ?? 'missing');
      expect(await page.getAttribute('a[href*="/document/810002"]', 'href')).toBe(
        'https://example.rossum.app/document/810002',
      );
      await shoot(page, 'export-1280');

      await page.click('text=View file');
      await page.waitForURL(/\/file$/);
      const shown = await page.locator('pre.file').textContent();
      expect(shown).toContain('<?xml');
      expect(shown).toContain('INV-810002');
      expect(await page.locator('.file-meta').textContent()).toContain('sha256 matches the ledger');
      await shoot(page, 'file-1280');
      const download = await Promise.all([
        page.waitForEvent('download'),
        page.click('.file-meta >> text=Download'),
      ]).then(([event]) => event);
      expect(download.suggestedFilename()).toBe(record?.remotePath?.split('/').at(-1));

      // The action: confirm, then the ledger records who and when.
      await page.goto(`${bridge.consoleUrl}/exports/${failedOutcomeExport}`);
      expect(await page.locator('#rossum').textContent()).toContain('annotation is locked');
      // The ack file as the ERP wrote it, decoded from windows-1252 and escaped (the markup is text, not elements).
      expect(await page.locator('.ack-content pre').textContent()).toBe(ACK_TEXT);
      expect(await page.locator('.ack-content summary').textContent()).toContain('windows-1252');
      expect(await page.locator('.ack-content script').count()).toBe(0);
      await page.click('text=Deliver again…');
      await page.waitForURL(/\/redeliver$/);
      await shoot(page, 'confirm-1280');
      await page.click('button:has-text("Deliver again")');
      await page.waitForURL(new RegExp(`/exports/${failedOutcomeExport}#rossum$`));
      expect(await page.locator('.timeline').textContent()).toContain('Queued for Rossum again (console)');
      expect(await page.locator('.audit').textContent()).toContain(OPERATOR.name);
      expect((await bridge.bridge.ledger.outcomes(failedOutcomeExport))[0]?.delivery).toBe('pending');
      await shoot(page, 'export-after-action-1280');

      // Live: a new export shows up on the list without a reload.
      await page.goto(`${bridge.consoleUrl}/exports`);
      await page.evaluate('window.notReloaded = true');
      expect(await bridge.send(810004)).toBe(200);
      await page.waitForSelector('#export-rows tr:has-text("INV-810004")', { timeout: 20_000 });
      expect(await page.evaluate<boolean>('window.notReloaded === true')).toBe(true);
      expect(await page.locator('#live').textContent()).toContain('updated');
      await shoot(page, 'exports-live-1280');

      await page.goto(`${bridge.consoleUrl}/overview`);
      await page.waitForSelector('#charts[data-drawn="true"]');
      expect(await page.locator('#charts canvas').count()).toBe(4);
      expect(await page.locator('#tile-exports').textContent()).toBe('4');
      await shoot(page, 'overview-1280');

      await page.goto(`${bridge.consoleUrl}/ack-files`);
      expect(await page.locator('main').textContent()).toContain('ack_unknown_77.csv');
      await shoot(page, 'ack-files-1280');
      expect(await horizontalOverflow(page)).toBe(0);
    } finally {
      await context.close();
    }
    expect(browserProblems).toEqual([]);
  }, 180_000);

  it('an operator (not a viewer) retries a transient upload failure: the kept bytes reach the target, the timeline says who and when', async () => {
    const { ledger } = bridge.bridge;
    await sshd.stop();
    try {
      expect(await bridge.send(810005)).toBe(503);
    } finally {
      await sshd.restart();
    }
    const [failed] = await ledger.list({ annotationId: 810005 });
    expect(failed?.status).toBe('retryable');
    const exportUrl = `${bridge.consoleUrl}/exports/${failed?.id}`;

    // A viewer is told about the kept file but offered no button (plain HTTP: no second browser sign-in needed).
    const viewer = new Session(bridge.consoleUrl);
    await viewer.signIn(VIEWER.name, VIEWER.password);
    const viewerHtml = await (await viewer.request(`/exports/${failed?.id}`)).text();
    expect(viewerHtml).toContain('by an operator');
    expect(viewerHtml).not.toContain('id="retry-upload"');

    const { context, page } = await newPage(1280, 900);
    try {
      await signIn(page, OPERATOR.name, OPERATOR.password);
      // Before the retry the file is viewable from the ledger's kept copy.
      await page.goto(`${exportUrl}/file`);
      expect(await page.locator('.file-meta').textContent()).toContain('kept by the ledger');
      expect(await page.locator('pre.file').textContent()).toContain('INV-810005');
      await page.goto(exportUrl);
      await shoot(page, 'export-retryable-1280');
      await page.click('#retry-upload');
      await page.waitForURL(/\/retry$/);
      expect(await page.locator('main').textContent()).toContain(failed?.sha256 ?? 'missing');
      await shoot(page, 'confirm-retry-1280');
      await page.click('button:has-text("Upload again")');
      await page.waitForURL(new RegExp(`/exports/${failed?.id}#timeline-h$`));
      const uploaded = await ledger.get(failed?.id ?? 0);
      expect(uploaded).toMatchObject({ status: 'uploaded', sha256: failed?.sha256 });
      const onTarget = readFileSync(join(sshd.inboundDir, uploaded?.remotePath ?? 'missing'));
      expect(createHash('sha256').update(onTarget).digest('hex')).toBe(failed?.sha256);
      const retried = page.locator('.timeline li.event-console_retry');
      expect(await retried.textContent()).toContain(OPERATOR.name);
      expect(await retried.locator('time').getAttribute('datetime')).toMatch(/^\d{4}-\d{2}-\d{2}T/);
      expect(await page.locator('.audit').textContent()).toContain(`${OPERATOR.name} · retry_upload`);
      expect(await page.locator('#retry-upload').count()).toBe(0);
      await shoot(page, 'export-after-retry-1280');
    } finally {
      await context.close();
    }
    expect(browserProblems).toEqual([]);
  }, 120_000);

  it('at phone width (390 px) every page reads without sideways scrolling; a viewer sees no action buttons', async () => {
    const { context, page } = await newPage(390, 844);
    try {
      await page.goto(`${bridge.consoleUrl}/login`);
      expect(await horizontalOverflow(page)).toBe(0);
      await shoot(page, 'login-390');
      await signIn(page, VIEWER.name, VIEWER.password);
      const record = (await bridge.bridge.ledger.list({ annotationId: 810002 }))[0];
      const pages: Array<[string, string]> = [
        ['/exports', 'exports-390'],
        [`/exports/${failedOutcomeExport}`, 'export-390'],
        [`/exports/${record?.id}/file`, 'file-390'],
        ['/overview', 'overview-390'],
        ['/ack-files', 'ack-files-390'],
      ];
      for (const [path, name] of pages) {
        await page.goto(`${bridge.consoleUrl}${path}`);
        if (path === '/overview') await page.waitForSelector('#charts[data-drawn="true"]');
        expect(await horizontalOverflow(page), path).toBe(0);
        await shoot(page, name);
      }
      await page.goto(`${bridge.consoleUrl}/exports/${failedOutcomeExport}`);
      expect(await page.locator('text=Deliver again…').count()).toBe(0);
      await page.goto(`${bridge.consoleUrl}/ack-files`);
      expect(await page.locator('text=Mark handled…').count()).toBe(0);
    } finally {
      await context.close();
    }
    expect(browserProblems).toEqual([]);
  }, 180_000);
});
