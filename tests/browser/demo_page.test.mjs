// demo_page.test.mjs - the demo page (GET /) in a real browser: headless Debian Chromium
// driven by playwright-core.
//
//   node tests/browser/demo_page.test.mjs PATH/TO/vggserve [OUTPUT_DIR]
//
// Loads the page from a live server on loopback, uploads a shipped photo and waits for five
// result rows (labels, probabilities summing to at most 1, the latency line) and the Grad-CAM
// overlay (its canvas pixels coloured beyond the plain photo's; the checkbox hides and shows
// it; a click on the second row explains that class), drops a second photo on the drop zone,
// sees the page fall back to /classify when /explain is refused as an int8 server refuses it,
// uploads a text file and expects the server's 415 message, and checks that the page fetched
// nothing from anywhere else and logged no errors of its own. The server has its own labels
// (--labels, non-ASCII names): the rows must show those, not ImageNet's.
// Screenshots go to OUTPUT_DIR (default build/tests/browser-output).
//
// Needs /usr/bin/chromium (Debian package chromium; CHROMIUM=PATH overrides). playwright-core
// (package-lock.json) is installed into tests/browser/node_modules, ignored by git, on first
// use; it downloads no browser.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
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

// The model's own labels, one per line (docs/api.md#labels).
const LABELS = Array.from({ length: 1000 }, (_, i) => `Blüte ${i}`);

let server, browser, page;
const requests = []; // every URL the page asked for
const consoleErrors = [];

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found: apt-get install chromium (or set CHROMIUM)`);
  mkdirSync(OUT, { recursive: true });
  writeFileSync(join(OUT, "labels.txt"), LABELS.join("\n") + "\n");
  server = await new Server(BIN, ["--max-batch-size", "2", "--labels", join(OUT, "labels.txt")]).start();
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
      classId: Number(tr.dataset.classId),
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

// The overlay canvas: which class it shows (data-class-id) and how far its pixels are from the
// plain crop, drawn here on a scratch canvas with the same geometry: the mean absolute
// difference per channel (0..255), and the fraction of pixels more than 24 away.
async function overlay() {
  return page.evaluate(() => {
    const view = document.getElementById("view"), img = document.getElementById("preview");
    if (view.hidden || !img.naturalWidth) return null;
    const w = view.width, h = view.height, drawn = view.getContext("2d").getImageData(0, 0, w, h).data;
    const plain = document.createElement("canvas");
    plain.width = w;
    plain.height = h;
    const rows = [...document.querySelectorAll("#results tbody tr")];
    const crop = window.lastCrop; // set by the test from the /explain answer
    plain.getContext("2d").drawImage(img, crop[0], crop[1], crop[2] - crop[0], crop[3] - crop[1], 0, 0, w, h);
    const base = plain.getContext("2d").getImageData(0, 0, w, h).data;
    let sum = 0, far = 0;
    for (let i = 0; i < drawn.length; i += 4) {
      let d = 0;
      for (let c = 0; c < 3; c++) d = Math.max(d, Math.abs(drawn[i + c] - base[i + c]));
      sum += Math.abs(drawn[i] - base[i]) + Math.abs(drawn[i + 1] - base[i + 1]) + Math.abs(drawn[i + 2] - base[i + 2]);
      if (d > 24) far++;
    }
    return {
      classId: view.dataset.classId,
      mean: sum / (3 * w * h),
      far: far / (w * h),
      marked: rows.filter((r) => r.classList.contains("explained")).map((r) => r.dataset.classId),
    };
  });
}

function assertTopFive(got) {
  assert.equal(got.length, 5, JSON.stringify(got));
  for (const r of got) {
    assert.equal(r.label, LABELS[r.classId], `not the model's label in ${JSON.stringify(got)}`);
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
});

test("the heat map of the top class is drawn over the photo; the toggle hides it; a row click explains that class", async () => {
  const photo = readFileSync(join(IMAGES, "chelsea.jpg"));
  const explainApi = async (query) => (await (await fetch(server.url("/explain?top_k=5" + query), {
    method: "POST", body: photo, headers: { "Content-Type": "image/jpeg" },
  })).json()).predictions[0];
  const top = await explainApi("");
  await page.evaluate((crop) => { window.lastCrop = crop; }, top.explanation.crop);
  assert.ok(requests.some((u) => u.startsWith(server.url("/explain?top_k=5"))), "the upload did not go to /explain");
  await page.waitForFunction(() => document.getElementById("view").dataset.classId !== undefined &&
                                   document.getElementById("view").dataset.classId !== "", null,
                             { timeout: RESULT_TIMEOUT_MS });
  const shown = await overlay();
  assert.equal(shown.classId, String(top.explanation.class_id));
  assert.deepEqual(shown.marked, [String(top.top_k[0].class_id)]);
  // Every pixel is tinted (opacity 0.25 at least) and most by far more than rounding.
  assert.ok(shown.mean > 20, `overlay mean difference ${shown.mean}`);
  assert.ok(shown.far > 0.5, `only ${shown.far} of the pixels coloured`);
  await page.screenshot({ path: join(OUT, "demo-result.png"), fullPage: true });

  await page.uncheck("#heat");
  const hidden = await overlay();
  assert.equal(hidden.classId, "");
  assert.ok(hidden.mean < 2, `with the map off the canvas is the plain crop, off by ${hidden.mean}`);
  await page.check("#heat");
  assert.ok((await overlay()).mean > 20);

  const second = top.top_k[1].class_id;
  const before = requests.length;
  await page.click("#results tbody tr:nth-child(2)");
  await page.waitForFunction((c) => document.getElementById("view").dataset.classId === String(c), second,
                             { timeout: RESULT_TIMEOUT_MS });
  assert.ok(requests.slice(before).some((u) => u.endsWith(`/explain?top_k=5&class_id=${second}`)));
  const other = await overlay();
  assert.deepEqual(other.marked, [String(second)]);
  // The picture is that class's map: drawn again from the API's own grid it differs from the
  // top-1 picture wherever the two maps differ.
  const want = await explainApi(`&class_id=${second}`);
  assert.equal(want.explanation.class_id, second);
  const gridsDiffer = want.explanation.grid.some((row, y) => row.some((v, x) => Math.abs(v - top.explanation.grid[y][x]) > 0.05));
  if (gridsDiffer) assert.ok(Math.abs(other.mean - shown.mean) > 0.01 || other.far !== shown.far, "the overlay did not change");
  await page.screenshot({ path: join(OUT, "demo-explained-second.png"), fullPage: true });
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

test("a server that refuses explanations (int8) still classifies; no heat map, no toggle", async () => {
  const isExplain = (url) => url.pathname === "/explain";
  await page.route(isExplain, (route) => route.fulfill({
    status: 400, contentType: "application/json",
    body: JSON.stringify({ error: { code: 400, type: "bad_request",
                                    message: "explanations are not supported in int8; serve with --precision f32 or bf16" } }),
  }));
  const before = requests.length;
  const classified = page.waitForResponse((r) => r.url().includes("/classify?top_k=5"), { timeout: RESULT_TIMEOUT_MS });
  await page.setInputFiles("#file", join(IMAGES, "rocket.jpg"));
  assert.equal((await classified).status(), 200);
  await page.waitForFunction(() => document.getElementById("latency").textContent.startsWith("server ") &&
                                   document.querySelectorAll("#results tbody tr").length === 5, null,
                             { timeout: RESULT_TIMEOUT_MS });
  assertTopFive(await rows());
  assert.ok(requests.slice(before).some((u) => u.includes("/classify?top_k=5")));
  assert.ok(await page.isHidden("#view"));
  assert.ok(await page.isHidden("#heat-toggle"));
  assert.ok(await page.isVisible("#preview"));
  assert.ok(await page.isHidden("#error"));
  await page.unroute(isExplain);
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
  assert.ok(requests.some((u) => u.startsWith(`${origin}/explain?top_k=5`)));
  assert.ok(requests.some((u) => u.startsWith(`${origin}/classify?top_k=5`))); // the int8 case
  // Chromium logs the 415 answer itself ("Failed to load resource"); anything else is the page's.
  const own = consoleErrors.filter((m) => !/Failed to load resource: the server responded with a status of (415|400)/.test(m));
  assert.deepEqual(own, []);
});
