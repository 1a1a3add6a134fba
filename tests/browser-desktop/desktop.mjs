// Drives headless Chromium for tests/desktop.rs (the agent desktop at /agent), one JSON
// request per stdin line and one JSON answer per stdout line.
//
//   node desktop.mjs --modules DIR --chromium PATH [--audio WAV] [--deny-microphone]
//
// DIR is a node_modules folder holding playwright-core (tests/support/browser.rs installs
// it into target/browser); PATH is the browser (Debian's /usr/bin/chromium). The
// microphone is Chromium's fake device, playing WAV when given; with --deny-microphone
// every permission prompt is refused, as an agent who clicks "Block" would. Playwright
// gives the browser a fresh user-data folder and removes it on close.
//
// First line out: {"event":"ready","browser":VERSION}. Then each request {"id":N,"op":...}
// gets exactly one answer {"id":N,"ok":true,"value":...} or {"id":N,"ok":false,"error":...,
// "page_text":...,"console":[...]}; requests run one at a time, in order. Every wait has
// a deadline (timeout_ms); nothing sleeps.
//
//   goto        url, timeout_ms                 load a page (until its `load` event)
//   fill        selector, value                 type into a field
//   click       selector, timeout_ms            click an element once it is enabled
//   press       key                             a key press on the page (e.g. "a")
//   wait        selector, text?, attribute?, value?, visible?, timeout_ms
//                                               until an element matching `selector` has
//                                               the trimmed text `text` (if given), the
//                                               attribute `attribute` equal to `value`
//                                               (if given) and (if `visible`) no hidden
//                                               ancestor; its text
//   until       expression, timeout_ms          until the JavaScript `expression`,
//                                               evaluated (and awaited) in the page, is
//                                               truthy, polled every 100 ms; its value
//   evaluate    expression                      the value of `expression` (awaited)
//   offline     offline                         Playwright's context.setOffline
//   screenshot  path                            a PNG of the page
//   state                                       {url, console, page_text}
//
// On stdin's end the browser is closed and the process exits 0.

import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (fallback !== undefined) return fallback;
  emit({ event: "error", error: `missing --${name}` });
  process.exit(2);
}

function emit(value) {
  process.stdout.write(JSON.stringify(value) + "\n");
}

const modules = resolve(option("modules"));
const executablePath = option("chromium", "/usr/bin/chromium");
const audio = option("audio", "");
const denyMicrophone = process.argv.includes("--deny-microphone");

const require = createRequire(join(modules, "noop.js"));
const { chromium } = require("playwright-core");

const consoleLog = [];
const note = (line) => {
  const stamped = `${new Date().toISOString()} ${line}`;
  consoleLog.push(stamped);
  if (consoleLog.length > 400) consoleLog.shift();
  process.stderr.write(stamped + "\n");
};

let browser;
let context;
let page;
try {
  const args = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
  ];
  if (denyMicrophone) args.push("--deny-permission-prompts");
  else args.push("--use-fake-ui-for-media-stream");
  if (audio) args.push(`--use-file-for-fake-audio-capture=${audio}`);
  browser = await chromium.launch({ executablePath, headless: true, args, timeout: 30_000 });
  context = await browser.newContext({
    viewport: { width: 1200, height: 900 },
    locale: "en-GB",
    permissions: denyMicrophone ? [] : ["microphone"],
  });
  page = await context.newPage();
} catch (error) {
  emit({ event: "error", error: String(error && error.stack ? error.stack : error) });
  process.exit(1);
}

page.on("console", (message) => note(`[console.${message.type()}] ${message.text()}`));
page.on("pageerror", (error) => note(`[pageerror] ${error.message}`));
page.on("requestfailed", (request) =>
  note(`[requestfailed] ${request.method()} ${request.url()}: ${request.failure()?.errorText}`),
);
page.on("response", (response) => {
  if (response.status() >= 400) note(`[http ${response.status()}] ${response.url()}`);
});
page.on("websocket", (socket) => {
  note(`[websocket] opened ${socket.url()}`);
  socket.on("close", () => note(`[websocket] closed ${socket.url()}`));
  socket.on("socketerror", (error) => note(`[websocket] error ${error}`));
  // SIP whole (its SDP tells what was offered); the desk's JSON too.
  socket.on("framesent", (frame) => note(`[websocket] sent ${String(frame.payload).slice(0, 4000)}`));
  socket.on("framereceived", (frame) =>
    note(`[websocket] received ${String(frame.payload).slice(0, 4000)}`),
  );
});

emit({ event: "ready", browser: browser.version() });

async function pageText() {
  try {
    return await page.evaluate(() => document.body?.innerText ?? "");
  } catch (error) {
    return `(the page's text could not be read: ${error.message})`;
  }
}

const operations = {
  async goto({ url, timeout_ms = 15_000 }) {
    const response = await page.goto(url, { waitUntil: "load", timeout: timeout_ms });
    return { status: response ? response.status() : null };
  },
  async fill({ selector, value, timeout_ms = 15_000 }) {
    await page.locator(selector).first().fill(value, { timeout: timeout_ms });
    return null;
  },
  async click({ selector, timeout_ms = 15_000 }) {
    await page.locator(selector).first().click({ timeout: timeout_ms });
    return null;
  },
  async press({ key }) {
    await page.keyboard.press(key);
    return null;
  },
  async wait({ selector, text, attribute, value, visible = false, timeout_ms = 15_000 }) {
    const handle = await page.waitForFunction(
      ({ selector, text, attribute, value, visible }) => {
        for (const element of document.querySelectorAll(selector)) {
          if (visible && element.closest("[hidden]")) continue;
          const content = element.textContent.trim();
          if (text !== undefined && text !== null && content !== text) continue;
          if (attribute && element.getAttribute(attribute) !== value) continue;
          return { text: content };
        }
        return false;
      },
      { selector, text, attribute, value, visible },
      { timeout: timeout_ms, polling: "raf" },
    );
    return (await handle.jsonValue()).text;
  },
  async until({ expression, timeout_ms = 15_000 }) {
    // page.evaluate awaits a promise the expression gives (waitForFunction would take the
    // promise itself as truthy); polled every 100 ms up to the deadline.
    const deadline = Date.now() + timeout_ms;
    let last;
    for (;;) {
      last = await page.evaluate(expression);
      if (last) return last;
      if (Date.now() >= deadline) {
        throw new Error(`still ${JSON.stringify(last)} after ${timeout_ms} ms`);
      }
      await new Promise((done) => setTimeout(done, 100));
    }
  },
  async evaluate({ expression }) {
    return await page.evaluate(expression);
  },
  async offline({ offline }) {
    await context.setOffline(!!offline);
    return null;
  },
  async screenshot({ path }) {
    mkdirSync(dirname(path), { recursive: true });
    await page.screenshot({ path, fullPage: true, timeout: 15_000 });
    return path;
  },
  async state() {
    return { url: page.url(), console: consoleLog, page_text: await pageText() };
  },
};

async function handle(line) {
  let request;
  try {
    request = JSON.parse(line);
  } catch (error) {
    emit({ id: null, ok: false, error: `not JSON: ${line}` });
    return;
  }
  const operation = operations[request.op];
  if (!operation) {
    emit({ id: request.id, ok: false, error: `unknown op ${JSON.stringify(request.op)}` });
    return;
  }
  try {
    emit({ id: request.id, ok: true, value: await operation(request) });
  } catch (error) {
    emit({
      id: request.id,
      ok: false,
      error: String(error && error.message ? error.message : error),
      page_text: await pageText(),
      console: consoleLog.slice(-60),
    });
  }
}

let queue = Promise.resolve();
const input = createInterface({ input: process.stdin });
input.on("line", (line) => {
  if (line.trim() === "") return;
  queue = queue.then(() => handle(line));
});
input.on("close", () => {
  queue
    .then(() => browser.close())
    .catch(() => {})
    .finally(() => process.exit(0));
});
