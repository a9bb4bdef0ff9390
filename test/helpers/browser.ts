/**
 * A real browser for the page tests: Debian's Chromium driven by playwright-core (never a
 * downloaded browser). `CHROMIUM` names another binary; where none exists the tests that need it
 * are skipped with {@link NO_BROWSER} as the reason.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

/** The Chromium binary the tests drive (default Debian's /usr/bin/chromium). */
export const CHROMIUM = process.env['CHROMIUM'] ?? '/usr/bin/chromium';

/** Whether {@link CHROMIUM} exists on this machine. */
export const HAVE_BROWSER = existsSync(CHROMIUM);

/** Why the browser tests are skipped, when they are. */
export const NO_BROWSER = `browser tests skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM=/path/to/chromium); .ci/run installs it`;

/** Launch the headless browser. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
}

/** Everything a page reported that a clean page must not: console errors, uncaught exceptions, failed requests, dialogs. */
export interface PageProblems {
  readonly errors: string[];
  readonly dialogs: string[];
}

/** Collect a page's console errors, page errors, failed or 4xx/5xx requests and dialogs (dismissed). */
export function watchPage(page: Page): PageProblems {
  const p: PageProblems = { errors: [], dialogs: [] };
  page.on('console', (m) => {
    if (m.type() === 'error') p.errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => p.errors.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => p.errors.push(`request failed: ${r.url()}`));
  page.on('response', (r) => {
    if (r.status() >= 400) p.errors.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  page.on('dialog', (d) => {
    p.dialogs.push(d.message());
    void d.dismiss();
  });
  return p;
}
