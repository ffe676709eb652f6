// check_openapi.mjs - api/openapi.yaml against OpenAPI 3.1, the source's routes, and a live server.
//
//   node tests/openapi/check_openapi.mjs PATH/TO/vggserve
//
// 1. The document validates as OpenAPI 3.1 (@apidevtools/swagger-parser), and every example in
//    it validates against its schema (ajv, JSON Schema 2020-12, which 3.1 schemas are).
// 2. Every route the server answers is in the document and every documented route is answered:
//    the routes are read from the source (the route table of server/http_routes.c and the
//    "GET /v2/..." comments of api/kserve_v2.h's route enum), compared with the document's paths
//    both ways, and each is requested from the server, which must not answer 404.
// 3. Responses captured from a live server (auth on; also while loading when the start-up is
//    slow enough to catch) are each documented for their route and status, with their
//    content type and headers, and their JSON bodies validate against the schemas.
//
// The npm dependencies (package-lock.json) are installed into tests/openapi/node_modules,
// ignored by git, on first use.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";

import { npmInstall, Server } from "../vggserve_process.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..", "..");
const BIN = process.argv[2] || join(ROOT, "build", "vggserve");
const TOKEN = "openapi-check-token";
const MODEL = "vgg16";

npmInstall(HERE, "ajv/package.json");
npmInstall(HERE, "@apidevtools/swagger-parser/package.json");
const { default: SwaggerParser } = await import("@apidevtools/swagger-parser");
const { default: Ajv2020 } = await import("ajv/dist/2020.js");

const DOC_PATH = join(ROOT, "api", "openapi.yaml");
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

// ---------------------------------------------------------------- the document

const raw = await SwaggerParser.parse(DOC_PATH);
const doc = await SwaggerParser.dereference(structuredClone(raw));
const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });

function validate(schema, value, what) {
  const check = ajv.compile(schema);
  if (!check(value))
    assert.fail(`${what}: ${ajv.errorsText(check.errors)}\n${JSON.stringify(value).slice(0, 600)}`);
}

// "/v2/models/{model_name}/infer" -> RegExp for concrete paths.
function templateRegex(template) {
  return new RegExp("^" + template.replace(/\{[^}]+\}/g, "[^/]+") + "$");
}

function findOperation(path, method) {
  for (const [template, item] of Object.entries(doc.paths))
    if (templateRegex(template).test(path)) return { template, op: item[method.toLowerCase()] };
  return { template: null, op: undefined };
}

// ---------------------------------------------------------------- routes in the source

function sourceRoutes() {
  const table = readFileSync(join(ROOT, "server", "http_routes.c"), "utf8");
  const v2 = readFileSync(join(ROOT, "api", "kserve_v2.h"), "utf8");
  const routes = new Set();
  // server/http_routes.c's table: [ROUTE_X] = {"/path", post, ...
  const rows = [...table.matchAll(/\[ROUTE_\w+\] = \{"([^"]+)", (true|false),/g)];
  assert.ok(rows.length > 0, "server/http_routes.c: no route table rows found");
  for (const m of rows) routes.add(`${m[2] === "true" ? "POST" : "GET"} ${m[1]}`);
  // api/kserve_v2.h: KSERVE_V2_ROUTE_X, /* GET /v2/models/M[/versions/1]/ready */
  for (const m of v2.matchAll(/KSERVE_V2_ROUTE_\w+,\s*\/\*\s*(GET|POST) (\/v2\S*)\s*\*\//g)) {
    const alt = /\((\w+)\|(\w+)\)$/.exec(m[2]); // ".../(load|unload)": two routes
    if (alt) {
      for (const a of alt.slice(1)) routes.add(`${m[1]} ${m[2].replace(alt[0], a).replace("/M", "/{model_name}")}`);
      continue;
    }
    const path = m[2].replace("/M", "/{model_name}");
    const optional = /\[\/versions\/1\]/;
    if (optional.test(path)) {
      routes.add(`${m[1]} ${path.replace(optional, "")}`);
      routes.add(`${m[1]} ${path.replace(optional, "/versions/{model_version}")}`);
    } else {
      routes.add(`${m[1]} ${path}`);
    }
  }
  return routes;
}

function documentedRoutes() {
  const routes = new Set();
  for (const [template, item] of Object.entries(doc.paths))
    for (const m of METHODS) if (item[m]) routes.add(`${m.toUpperCase()} ${template}`);
  return routes;
}

const concrete = (template) => template.replace("{model_name}", MODEL).replace("{model_version}", "1");

// ---------------------------------------------------------------- live captures

const image = readFileSync(join(ROOT, "tests", "data", "images", "chelsea.jpg"));
const auth = { Authorization: `Bearer ${TOKEN}` };

function inferJson(body) {
  return { method: "POST", body: JSON.stringify(body), headers: { ...auth, "Content-Type": "application/json" } };
}

function inferBinary(header, binary) {
  const h = Buffer.from(JSON.stringify(header));
  return {
    method: "POST",
    body: Buffer.concat([h, binary]),
    headers: { ...auth, "Content-Type": "application/octet-stream", "Inference-Header-Content-Length": String(h.length) },
  };
}

function lengthPrefixed(bytes) {
  const len = Buffer.alloc(4);
  len.writeUInt32LE(bytes.length);
  return Buffer.concat([len, bytes]);
}

const INFER = `/v2/models/${MODEL}/infer`;
const INFER_IMAGE = inferJson({ id: "json-1", inputs: [{ name: "image", datatype: "BYTES", shape: [1], data: [image.toString("base64")] }] });
const CLASSIFY_IMAGE = { method: "POST", body: image, headers: { ...auth, "Content-Type": "image/jpeg" } };
const zeros = new Array(3 * 224 * 224).fill(0);
const REQUESTS = [
  ["/", { method: "GET" }],
  ["/classify", CLASSIFY_IMAGE],
  ["/classify?top_k=0", { method: "POST", body: image, headers: { ...auth, "Content-Type": "image/jpeg" } }],
  ["/classify", { method: "POST", body: "", headers: auth }],
  ["/classify", { method: "POST", body: "just text\n", headers: { ...auth, "Content-Type": "text/plain" } }],
  ["/classify", { method: "POST", body: Buffer.concat([image.subarray(0, 200), Buffer.alloc(64)]), headers: auth }],
  ["/classify", { method: "POST", body: image, headers: { "Content-Type": "image/jpeg" } }], // 401
  ["/classify", { method: "GET" }], // 405
  ["/explain", CLASSIFY_IMAGE],
  ["/explain?class_id=5000", CLASSIFY_IMAGE], // 400
  ["/healthz", { method: "GET" }],
  ["/readyz", { method: "GET" }],
  ["/metrics", { method: "GET" }],
  ["/no/such/path", { method: "GET" }], // 404
  ["/v2", { method: "GET" }],
  ["/v2/health/live", { method: "GET" }],
  ["/v2/health/ready", { method: "GET" }],
  [`/v2/models/${MODEL}`, { method: "GET" }],
  [`/v2/models/${MODEL}/versions/1`, { method: "GET" }],
  [`/v2/models/${MODEL}/ready`, { method: "GET" }],
  [`/v2/models/${MODEL}/versions/1/ready`, { method: "GET" }],
  ["/v2/models/resnet50", { method: "GET" }], // 404
  [`/v2/models/${MODEL}/versions/2/ready`, { method: "GET" }], // 404
  ["/v2/repository/index", { method: "POST", body: "", headers: auth }],
  [`/v2/repository/models/${MODEL}/load`, { method: "POST", body: "{}", headers: auth }], // 400
  [`/v2/repository/models/${MODEL}/unload`, { method: "POST", body: "{}", headers: auth }], // 400
  [`/v2/models/${MODEL}_tensor/config`, { method: "GET" }],
  [`/v2/models/${MODEL}_image/versions/1/config`, { method: "GET" }],
  [`/v2/models/${MODEL}/stats`, { method: "GET" }],
  [`/v2/models/${MODEL}_image/versions/1/stats`, { method: "GET" }],
  ["/v2/models/stats", { method: "GET" }],
  [`/v2/models/${MODEL}/labels`, { method: "GET" }],
  [`/v2/models/${MODEL}_tensor/versions/1/labels`, { method: "GET" }],
  [`/v2/models/${MODEL}_image`, { method: "GET" }],
  [INFER, { method: "GET" }], // 405
  [`/v2/models/${MODEL}`, { method: "POST", body: "{}", headers: auth }], // 405
  [INFER, INFER_IMAGE],
  [
    `/v2/models/${MODEL}/versions/1/infer`,
    inferJson({
      inputs: [{ name: "image", datatype: "BYTES", shape: [1], data: [image.toString("base64")] }],
      outputs: [{ name: "probabilities", parameters: { classification: 3 } }, { name: "logits" }],
    }),
  ],
  [INFER, inferJson({ inputs: [{ name: "input", datatype: "FP32", shape: [1, 3, 224, 224], data: zeros }] })],
  [
    INFER,
    inferBinary(
      { inputs: [{ name: "image", datatype: "BYTES", shape: [1], parameters: { binary_data_size: image.length + 4 } }], parameters: { binary_data_output: true } },
      lengthPrefixed(image),
    ),
  ],
  [INFER, inferJson({ inputs: [] })], // 400
  [INFER, { method: "POST", body: "{not json", headers: auth }], // 400
  [INFER, inferJson({ inputs: [{ name: "image", datatype: "BYTES", shape: [1000], data: [] }] })], // 413
  [INFER, inferJson({ inputs: [{ name: "image", datatype: "BYTES", shape: [1], data: [Buffer.from("plain text").toString("base64")] }] })], // 415
  [INFER, inferJson({ inputs: [{ name: "image", datatype: "BYTES", shape: [1], data: [image.subarray(0, 300).toString("base64")] }] })], // 422
  [INFER, { method: "POST", body: "{}", headers: { "Content-Type": "application/json" } }], // 401
  [`/v2/models/resnet50/infer`, inferJson({ inputs: [] })], // 404
];

async function capture(server, path, req) {
  const r = await fetch(server.url(path), req);
  const body = Buffer.from(await r.arrayBuffer());
  return { path, method: req.method, status: r.status, headers: r.headers, body };
}

const server = new Server(BIN, ["--auth-token", TOKEN, "--max-images-per-request", "4"]);
after(() => server.stop());
const captures = [];
await server.start(async (s) => {
  // While loading or warming: the not-ready answers.
  for (const path of ["/readyz", "/v2/health/ready", `/v2/models/${MODEL}/ready`]) captures.push(await capture(s, path, { method: "GET" }));
  captures.push(await capture(s, "/classify", CLASSIFY_IMAGE));
  captures.push(await capture(s, INFER, INFER_IMAGE));
});
for (const [path, req] of REQUESTS) captures.push(await capture(server, path, req));

// ---------------------------------------------------------------- tests

test("the document is valid OpenAPI 3.1", async () => {
  assert.equal(raw.openapi.slice(0, 4), "3.1.");
  await SwaggerParser.validate(structuredClone(raw));
});

test("every example in the document validates against its schema", () => {
  let n = 0;
  const walk = (node, where) => {
    if (!node || typeof node !== "object") return;
    if (node.schema && typeof node.schema === "object") {
      if ("example" in node) validate(node.schema, node.example, `${where}.example`), n++;
      for (const [name, ex] of Object.entries(node.examples || {}))
        if (ex && "value" in ex) validate(node.schema, ex.value, `${where}.examples.${name}`), n++;
    }
    if (node.type === "object" && node.properties && "example" in node) validate(node, node.example, `${where}.example`), n++;
    for (const [k, v] of Object.entries(node)) if (k !== "example" && k !== "examples") walk(v, `${where}/${k}`);
  };
  walk(doc, "#");
  assert.ok(n >= 5, `only ${n} examples found`);
});

test("every route in the source is documented, and every documented route is in the source", (t) => {
  const src = sourceRoutes();
  t.diagnostic(`routes in the source: ${[...src].join(", ")}`);
  assert.ok(src.has("POST /classify") && src.has("GET /v2/health/live"), [...src].join(", "));
  const documented = documentedRoutes();
  const missing = [...src].filter((r) => !documented.has(r));
  const extra = [...documented].filter((r) => !src.has(r));
  assert.deepEqual(missing, [], `answered by the server, not in api/openapi.yaml: ${missing}`);
  assert.deepEqual(extra, [], `in api/openapi.yaml, not answered by the server: ${extra}`);
});

test("the server answers every documented route (not 404)", async () => {
  for (const route of documentedRoutes()) {
    const [method, template] = route.split(" ");
    const c = captures.find((x) => x.method === method && findOperation(x.path.split("?")[0], method).template === template && x.status !== 404);
    assert.ok(c, `no capture of ${route} other than 404`);
  }
});

test("every captured response is documented and validates against its schema", (t) => {
  let validated = 0;
  for (const c of captures) {
    const what = `${c.method} ${c.path} -> ${c.status}`;
    const path = c.path.split("?")[0];
    const { op } = findOperation(path, c.method);
    const v2 = path.startsWith("/v2");
    let resp;
    if (c.status === 405) {
      assert.equal(op, undefined, `${what}: 405 on a documented method`);
      resp = doc.components.responses[v2 ? "V2MethodNotAllowed" : "MethodNotAllowed"];
      assert.ok(c.headers.get("allow"), `${what}: no Allow header`);
    } else if (!op) {
      assert.equal(c.status, 404, `${what}: an undocumented route answered`);
      resp = doc.components.responses[v2 ? "V2NotFound" : "NotFound"];
    } else {
      resp = op.responses[String(c.status)];
      assert.ok(resp, `${what}: status not documented for the route`);
    }
    const type = (c.headers.get("content-type") || "").split(";")[0].trim();
    assert.ok(resp.content && resp.content[type], `${what}: content type ${type} not documented`);
    for (const h of ["retry-after", "www-authenticate", "inference-header-content-length", "content-security-policy", "allow"]) {
      if (!c.headers.get(h) || h === "allow") continue;
      const documented = Object.keys(resp.headers || {}).map((k) => k.toLowerCase());
      assert.ok(documented.includes(h), `${what}: header ${h} not documented`);
    }
    let json = null;
    if (type === "application/json") json = JSON.parse(c.body.toString("utf8"));
    else if (type === "application/octet-stream") {
      // A binary infer answer: its JSON header is the InferResponse.
      const n = Number(c.headers.get("inference-header-content-length"));
      assert.ok(n > 0 && n <= c.body.length, `${what}: bad Inference-Header-Content-Length`);
      json = JSON.parse(c.body.subarray(0, n).toString("utf8"));
      assert.ok(resp.content["application/json"], `${what}: no JSON header schema`);
      validate(resp.content["application/json"].schema, json, `${what} (JSON header)`);
      validated++;
      continue;
    } else {
      assert.ok(c.body.length > 0, `${what}: empty ${type} body`);
      continue;
    }
    validate(resp.content[type].schema, json, what);
    validated++;
  }
  t.diagnostic(`${captures.length} responses, ${validated} JSON bodies validated, statuses ` +
               [...new Set(captures.map((c) => c.status))].sort().join(" "));
  assert.ok(validated >= 30, `only ${validated} JSON bodies validated`);
  const statuses = new Set(captures.map((c) => c.status));
  for (const s of [200, 400, 401, 404, 405, 413, 415, 422]) assert.ok(statuses.has(s), `no ${s} captured`);
});
