// demo_page.test.mjs - the demo page (GET /) in a real browser: headless Debian Chromium
// driven by playwright-core.
//
//   node tests/browser/demo_page.test.mjs PATH/TO/vggserve [OUTPUT_DIR]
//
// Loads the page from a live server on loopback, uploads a shipped photo and waits for five
// result rows (labels, probabilities summing to at most 1, the latency line), drops a second
// photo on the drop zone, uploads a text file and expects the server's 415 message, and checks
// that the page fetched nothing from anywhere else and logged no errors of its own.
// Screenshots go to OUTPUT_DIR (default build/tests/browser-output).
//
// Needs /usr/bin/chromium (Debian package chromium; CHROMIUM=PATH overrides). playwright-core
// (package-lock.json) is installed into tests/browser/node_modules, ignored by git, on first
// use; it downloads no browser.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { npmInstall, Server } from "../vggserve_process.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..", "..");
const BIN = process.argv[2] || join(ROOT, "build", "vggserve");
const OUT = process.argv[3] || join(ROOT, "build", "tests", "browser-output");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const IMAGES = join(ROOT, "tests", "data", "images");
const RESULT_TIMEOUT_MS = 120_000;

npmInstall(HERE, "playwright-core/package.json");
const { chromium } = await import("playwright-core");

let server, browser, page;
const requests = []; // every URL the page asked for
const consoleErrors = [];

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found: apt-get install chromium (or set CHROMIUM)`);
  mkdirSync(OUT, { recursive: true });
  server = await new Server(BIN, ["--max-batch-size", "2"]).start();
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
  page = await browser.newPage({ viewport: { width: 900, height: 520 } });
  page.on("request", (r) => requests.push(r.url()));
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => consoleErrors.push(`uncaught: ${e.message}`));
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

// The rows of the results table as {label, probability}.
async function rows() {
  return page.$$eval("#results tbody tr", (trs) =>
    trs.map((tr) => ({
      label: tr.querySelector("td.label").firstChild.textContent.trim(),
      probability: Number(tr.dataset.probability),
      width: tr.querySelector(".bar span").style.width,
    })),
  );
}

async function waitForRows(n) {
  await page.waitForFunction((n) => document.querySelectorAll("#results tbody tr").length === n, n, {
    timeout: RESULT_TIMEOUT_MS,
  });
}

function assertTopFive(got) {
  assert.equal(got.length, 5, JSON.stringify(got));
  for (const r of got) {
    assert.ok(r.label.length > 0, `empty label in ${JSON.stringify(got)}`);
    assert.ok(r.probability >= 0 && r.probability <= 1, `probability ${r.probability}`);
    assert.match(r.width, /^\d+(\.\d)?%$/);
  }
  const probs = got.map((r) => r.probability);
  assert.deepEqual(probs, [...probs].sort((a, b) => b - a), "rows not in decreasing probability");
  const sum = probs.reduce((a, b) => a + b, 0);
  assert.ok(sum <= 1 + 1e-6, `probabilities sum to ${sum}`);
}

test("the page loads from the server, with nothing from elsewhere", async () => {
  const resp = await page.goto(server.url("/"));
  assert.equal(resp.status(), 200);
  assert.equal(await page.title(), "vggserve demo");
  assert.ok(await page.isVisible("#drop"));
  assert.ok(await page.isHidden("#error"));
  assert.ok(await page.isHidden("#out"));
});

test("an uploaded photo shows the image, five classes with bars, and the latency", async () => {
  await page.setInputFiles("#file", join(IMAGES, "chelsea.jpg"));
  await waitForRows(5);
  const got = await rows();
  assertTopFive(got);
  assert.ok(await page.isHidden("#error"));
  assert.match(await page.textContent("#latency"), /^server \d+\.\d ms \(inference \d+\.\d ms, queue \d+\.\d ms\), round trip \d+ ms$/);
  await page.waitForFunction(() => document.getElementById("preview").naturalWidth > 0);
  // The same top 5 as POST /classify for the same bytes.
  const api = await (await fetch(server.url("/classify?top_k=5"), {
    method: "POST",
    body: readFileSync(join(IMAGES, "chelsea.jpg")),
    headers: { "Content-Type": "image/jpeg" },
  })).json();
  assert.deepEqual(got.map((r) => r.label), api.predictions[0].top_k.map((t) => t.label));
  await page.screenshot({ path: join(OUT, "demo-result.png"), fullPage: true });
});

test("a photo dropped on the drop zone is classified", async () => {
  const before = await rows();
  const b64 = readFileSync(join(IMAGES, "coffee.jpg")).toString("base64");
  await page.evaluate((b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], "coffee.jpg", { type: "image/jpeg" }));
    document.getElementById("drop").dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, b64);
  await page.waitForFunction(
    (old) => {
      const trs = [...document.querySelectorAll("#results tbody tr")];
      return trs.length === 5 && trs.map((t) => t.dataset.probability).join() !== old;
    },
    before.map((r) => String(r.probability)).join(),
    { timeout: RESULT_TIMEOUT_MS },
  );
  assertTopFive(await rows());
});

test("a text file gets the server's error message", async () => {
  await page.setInputFiles("#file", { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("not an image\n") });
  await page.waitForSelector("#error", { state: "visible", timeout: RESULT_TIMEOUT_MS });
  const text = await page.textContent("#error");
  assert.match(text, /^Error 415 \(unsupported_media_type\): .+/);
  assert.match(text, /JPEG, PNG or WebP/i);
  assert.ok(await page.isHidden("#out"), "results still shown after an error");
  await page.screenshot({ path: join(OUT, "demo-error.png"), fullPage: true });
});

test("the page fetched only from its server and logged no errors of its own", () => {
  const origin = server.url("");
  const foreign = requests.filter((u) => !u.startsWith(origin) && !u.startsWith("blob:") && !u.startsWith("data:"));
  assert.deepEqual(foreign, []);
  assert.ok(requests.some((u) => u.startsWith(`${origin}/classify?top_k=5`)));
  // Chromium logs the 415 answer itself ("Failed to load resource"); anything else is the page's.
  const own = consoleErrors.filter((m) => !/Failed to load resource: the server responded with a status of 415/.test(m));
  assert.deepEqual(own, []);
});
