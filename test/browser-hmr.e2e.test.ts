import { describe, expect, it } from 'vitest';
import { launchChromium } from './helpers/browser.js';
import { startAgentProcess } from './helpers/processes.js';
import { startViteApp } from './helpers/vite-app.js';

const INDEX_HTML = `<!doctype html>
<html>
  <head><meta charset="utf-8"><title>hmr through the tunnel</title></head>
  <body>
    <div id="app"></div>
    <script type="module" src="/main.js"></script>
  </body>
</html>
`;

/** A module that accepts its own updates, so an edit is applied in place rather than by a reload. */
function mainModule(text: string): string {
  return `document.querySelector('#app').textContent = ${JSON.stringify(text)};\nimport.meta.hot?.accept();\n`;
}

describe('a Vite dev server through the tunnel, in a real browser', () => {
  it('updates the page in place when a module changes on disk', async () => {
    const app = await startViteApp({ 'index.html': INDEX_HTML, 'main.js': mainModule('version one') });
    const agent = await startAgentProcess(['--port', String(app.port), '--local-host', '127.0.0.1', '--relay-port', '0']);
    const browser = await launchChromium();
    const page = await browser.newPage();
    page.setDefaultTimeout(15_000);

    let loads = 0;
    page.on('load', () => {
      loads += 1;
    });
    // Frames are recorded from the moment a socket opens: Vite greets a client at once, often
    // before the page has rendered.
    const sockets: string[] = [];
    const frames: string[] = [];
    page.on('websocket', (socket) => {
      sockets.push(socket.url());
      socket.on('framereceived', ({ payload }) => frames.push(String(payload)));
    });
    const framesOfType = (type: string): number => frames.filter((frame) => frame.includes(`"type":"${type}"`)).length;

    await page.goto(agent.url.href);
    await expect.poll(() => page.textContent('#app'), { timeout: 15_000 }).toBe('version one');
    // Vite greets each HMR client; an edit made before the greeting could go unannounced.
    await expect.poll(() => framesOfType('connected'), { timeout: 15_000 }).toBe(1);
    // One HMR socket, dialled to the tunnel's public host and port. Had it failed, Vite's client
    // would have opened a second one straight to Vite's own port.
    expect(sockets.map((url) => new URL(url).host)).toEqual([agent.url.host]);
    expect(new URL(sockets[0]!).protocol).toBe('ws:');

    await app.write('main.js', mainModule('version two'));
    await expect.poll(() => framesOfType('update'), { timeout: 15_000 }).toBeGreaterThan(0);
    await expect.poll(() => page.textContent('#app'), { timeout: 15_000 }).toBe('version two');
    // Updated in place: the page was never reloaded.
    expect(loads).toBe(1);
  });
});
