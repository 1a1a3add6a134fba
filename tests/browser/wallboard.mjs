// Drives headless Chromium for tests/wallboard.rs, one JSON request per stdin line and
// one JSON answer per stdout line.
//
//   node wallboard.mjs --modules DIR --chromium PATH [--viewport 1600x1000]
//
// DIR is the node_modules folder holding playwright-core (tests/wallboard.rs installs it
// into target/browser with `npm ci`); PATH is the browser (Debian's /usr/bin/chromium).
// Playwright gives the browser a fresh user-data folder of its own and removes it on close.
//
// Once the browser runs, the first line out is {"event":"ready","browser":VERSION}. Then
// each request {"id":N,"op":...} gets exactly one answer {"id":N,"ok":true,"value":...}
// or {"id":N,"ok":false,"error":...,"page_text":...,"console":[...]}; requests run one
// at a time, in order. Every wait has a deadline (timeout_ms); nothing sleeps.
//
//   goto        url, timeout_ms           load a page (and wait for its `load` event)
//   wait        selector, text?, not_text?, visible?, timeout_ms
//                                         until an element matching `selector` exists,
//                                         its trimmed text equals `text` (if given) and
//                                         differs from `not_text` (if given), and no
//                                         ancestor is hidden (if `visible`); its text
//   text        selector?                 innerText of the element (default: the body)
//   screenshot  path, full_page?          a PNG of the page
//   state                                 {url, loads, console, page_text}
//
// On stdin's end the browser is closed and the process exits 0. A failure to start the
// browser prints {"event":"error","error":...} and exits 1.

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
const [width, height] = option("viewport", "1600x1000").split("x").map(Number);

// playwright-core lives in the test's own node_modules, not beside this script.
const require = createRequire(join(modules, "noop.js"));
const { chromium } = require("playwright-core");

/** What the page said: console messages, errors, failed requests, WebSocket life. */
const consoleLog = [];
const note = (line) => {
  consoleLog.push(`${new Date().toISOString()} ${line}`);
  if (consoleLog.length > 500) consoleLog.shift();
};
let loads = 0;

let browser;
let page;
try {
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    timeout: 30_000,
  });
  const context = await browser.newContext({ viewport: { width, height } });
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
  socket.on("framereceived", (frame) => note(`[websocket] received ${String(frame.payload).slice(0, 300)}`));
});
page.on("load", () => {
  loads += 1;
  note(`[load] ${page.url()}`);
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

  async wait({ selector, text, not_text, visible = false, timeout_ms = 15_000 }) {
    const handle = await page.waitForFunction(
      ({ selector, text, not_text, visible }) => {
        for (const element of document.querySelectorAll(selector)) {
          if (visible && element.closest("[hidden]")) continue;
          const content = element.textContent.trim();
          if (text !== undefined && text !== null && content !== text) continue;
          if (not_text !== undefined && not_text !== null && content === not_text) continue;
          // An object, so that an empty text still counts as found.
          return { text: content };
        }
        return false;
      },
      { selector, text, not_text, visible },
      { timeout: timeout_ms, polling: "raf" },
    );
    return (await handle.jsonValue()).text;
  },

  async text({ selector }) {
    if (!selector) return pageText();
    return page.locator(selector).first().innerText({ timeout: 5_000 });
  },

  async screenshot({ path, full_page = true }) {
    mkdirSync(dirname(path), { recursive: true });
    await page.screenshot({ path, fullPage: full_page, timeout: 15_000 });
    return path;
  },

  async state() {
    return { url: page.url(), loads, console: consoleLog, page_text: await pageText() };
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
      console: consoleLog,
    });
  }
}

// One request at a time, in order.
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
