import { chromium, type Browser } from 'playwright-core';
import { onTestFinished } from 'vitest';

/** Debian's Chromium (`apt-get install chromium`); playwright-core downloads no browser of its own. */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/**
 * Flags this machine needs: no sandbox (tests run as root), no GPU, and no QUIC or background
 * traffic, so the only connections the browser opens are the ones the test asks for.
 */
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

/**
 * Launches a headless Chromium, closed when the test ends. Chromium resolves `*.localhost` to
 * loopback by itself, so tunnel URLs open without DNS or a Host-header override.
 */
export async function launchChromium(timeoutMs = 15_000): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, timeout: timeoutMs });
  onTestFinished(() => browser.close());
  return browser;
}
