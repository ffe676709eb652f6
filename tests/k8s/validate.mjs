// validate.mjs - validate Kubernetes manifests offline with kubernetes-models.
//
//   node tests/k8s/validate.mjs FILE.yaml...     (- reads stdin, e.g. `kubectl kustomize`)
//
// Every YAML document is loaded with js-yaml and validated against the Kubernetes OpenAPI
// schema of its apiVersion/kind (kubernetes-models); a kind it has no model for fails, except
// KServe's InferenceService, whose predictor containers are validated as core/v1 Containers,
// and TrainedModel, checked field by field here (and against its multi-model InferenceService).
// The schema check lets unknown fields through (a typo like `readinesProbe` would be silently
// dropped by a lenient apply), so each document is also type-checked as an object literal of
// kubernetes-models' TypeScript interface with tsc, which rejects unknown properties.
// Then the documents are checked against each other: selectors match pod labels, references
// (HPA target, ConfigMap volume, resourceFieldRef container, probe port names) exist, and
// terminationGracePeriodSeconds covers preStop + shutdown_grace_s + 5 s of answer flushing;
// a Deployment rolls with maxUnavailable 0, readiness on /readyz and a preStop pause.
// Prints one line per check and exits 1 if any failed.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import yaml from "js-yaml";
import { Container } from "kubernetes-models/v1";

let failures = 0;
let passes = 0;
const fail = (where, msg) => {
  console.log(`FAIL ${where}: ${msg}`);
  failures++;
};
const pass = (msg) => {
  console.log(`ok   ${msg}`);
  passes++;
};

// apiVersion "apps/v1" -> module "kubernetes-models/apps/v1", "v1" -> "kubernetes-models/v1".
async function modelFor(apiVersion, kind) {
  try {
    const mod = await import(`kubernetes-models/${apiVersion}`);
    return mod[kind];
  } catch {
    return undefined;
  }
}

function validationErrors(obj, Model) {
  try {
    new Model(obj).validate();
    return null;
  } catch (e) {
    return e.message;
  }
}

function inferenceServiceErrors(doc) {
  const containers = doc?.spec?.predictor?.containers;
  if (!doc?.metadata?.name) return "metadata.name missing";
  if (!Array.isArray(containers) || containers.length === 0)
    return "spec.predictor.containers missing";
  for (const c of containers) {
    const err = validationErrors(c, Container);
    if (err) return `container ${c.name}: ${err}`;
  }
  return null;
}

// KServe's TrainedModel (serving.kserve.io/v1alpha1; no kubernetes-models schema): the fields
// KServe reads, nothing else, and a name vggserve accepts as a model name, since the agent
// downloads the model to <model dir>/<name> and loads it by that name.
const trainedModelKeys = { "": ["apiVersion", "kind", "metadata", "spec"],
  spec: ["inferenceService", "model"], model: ["storageUri", "framework", "memory"] };
const quantity = /^([0-9]+(\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/;
function bytes(q) {
  const m = quantity.exec(String(q ?? ""));
  if (!m) return NaN;
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(m[1]) * (m[3] ? unit[m[3]] : 1);
}
function trainedModelErrors(doc) {
  const unknown = (obj, allowed, where) =>
    Object.keys(obj ?? {}).filter((k) => !allowed.includes(k)).map((k) => `unknown field ${where}${k}`);
  const errs = [...unknown(doc, trainedModelKeys[""], ""), ...unknown(doc.spec, trainedModelKeys.spec, "spec."),
    ...unknown(doc.spec?.model, trainedModelKeys.model, "spec.model.")];
  const name = doc.metadata?.name ?? "";
  if (!/^[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,62}$/.test(name))
    errs.push(`metadata.name "${name}" is not a vggserve model name`);
  if (typeof doc.spec?.inferenceService !== "string") errs.push("spec.inferenceService missing");
  if (!/^[a-z0-9]+:\/\/./.test(doc.spec?.model?.storageUri ?? "")) errs.push("spec.model.storageUri missing");
  if (typeof doc.spec?.model?.framework !== "string") errs.push("spec.model.framework missing");
  if (!(bytes(doc.spec?.model?.memory) > 0)) errs.push(`spec.model.memory "${doc.spec?.model?.memory}" is not a quantity`);
  return errs.length ? errs.join("; ") : null;
}

// Unknown fields: `const d3: IDeployment = {...};` per document, one per line, through tsc.
// typed: [{where, type, module, value}]; returns nothing, records a pass or failure per entry.
function strictFields(typed) {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const tsc = path.join(here, "node_modules", "typescript", "bin", "tsc");
  if (!fs.existsSync(tsc)) {
    console.log("skip unknown-field check: typescript is not installed (tests/k8s/run.sh installs it)");
    return;
  }
  // Inside node_modules so that tsc resolves kubernetes-models from tests/k8s/node_modules.
  const dir = path.join(here, "node_modules", ".vggserve-strict");
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, "manifests.ts");
  const lines = typed.map(({ type, module, value }, i) =>
    `import type { ${type} as T${i} } from "${module}"; export const d${i}: T${i} = ${JSON.stringify(value)};`);
  fs.writeFileSync(file, lines.join("\n") + "\n");
  const r = spawnSync(process.execPath, [tsc, "--noEmit", "--strict", "--skipLibCheck",
    "--module", "esnext", "--moduleResolution", "bundler", "--target", "es2022", file],
    { encoding: "utf8" });
  const bad = new Map();
  for (const m of (r.stdout + r.stderr).matchAll(/manifests\.ts\((\d+),\d+\): error (TS\d+: .*)/g)) {
    const i = Number(m[1]) - 1;
    if (!bad.has(i)) bad.set(i, m[2]);
  }
  if (r.status !== 0 && bad.size === 0) fail("tsc", (r.stdout + r.stderr).trim().slice(0, 500));
  typed.forEach(({ where }, i) => {
    if (bad.has(i)) fail(where, `unknown or mistyped field: ${bad.get(i)}`);
    else pass(`${where}: no unknown fields`);
  });
}

// ---------------------------------------------------------------- load and validate
// --repository: the documents must serve a model repository from a PersistentVolumeClaim
// (docker/k8s-repository rendered): a check that its patch took.
const requireRepository = process.argv.includes("--repository");
const files = process.argv.slice(2).filter((a) => a !== "--repository");
if (files.length === 0) {
  console.error("usage: node validate.mjs [--repository] FILE.yaml... (- for stdin)");
  process.exit(2);
}
const docs = [];
for (const file of files) {
  const text = fs.readFileSync(file === "-" ? 0 : file, "utf8");
  let loaded;
  try {
    loaded = yaml.loadAll(text);
  } catch (e) {
    fail(file, `YAML: ${e.message}`);
    continue;
  }
  loaded.forEach((doc, i) => {
    if (doc == null) return; // an empty document between ---
    const where = `${file === "-" ? "<stdin>" : file}#${i} ${doc.kind}/${doc.metadata?.name}`;
    docs.push({ where, doc });
  });
}
const typed = [];
for (const { where, doc } of docs) {
  if (!doc.apiVersion || !doc.kind) {
    fail(where, "apiVersion and kind are required");
    continue;
  }
  let err;
  if (doc.apiVersion.startsWith("serving.kserve.io/") && doc.kind === "InferenceService") {
    err = inferenceServiceErrors(doc);
    for (const c of doc.spec?.predictor?.containers ?? [])
      typed.push({ where: `${where} container ${c.name}`, type: "IContainer",
                   module: "kubernetes-models/v1/Container", value: c });
  } else if (doc.apiVersion === "serving.kserve.io/v1alpha1" && doc.kind === "TrainedModel") {
    err = trainedModelErrors(doc);
  } else {
    const Model = await modelFor(doc.apiVersion, doc.kind);
    err = Model ? validationErrors(doc, Model) : `no schema for ${doc.apiVersion} ${doc.kind}`;
    if (Model)
      typed.push({ where, type: `I${doc.kind}`, value: doc,
                   module: `kubernetes-models/${doc.apiVersion}/${doc.kind}` });
  }
  if (err) fail(where, err);
  else pass(`${where} (${doc.apiVersion})`);
}
if (typed.length) strictFields(typed);

// ---------------------------------------------------------------- consistency
const byKind = (kind) => docs.filter((d) => d.doc.kind === kind);
const matches = (selector, labels) =>
  Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);

for (const { where, doc } of byKind("Deployment")) {
  const pod = doc.spec.template;
  if (!matches(doc.spec.selector.matchLabels, pod.metadata?.labels))
    fail(where, "spec.selector does not match the pod template's labels");
  const names = new Set(pod.spec.containers.map((c) => c.name));
  for (const c of pod.spec.containers) {
    const ports = new Set((c.ports ?? []).map((p) => p.name).filter(Boolean));
    for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
      const port = c[probe]?.httpGet?.port;
      if (typeof port === "string" && !ports.has(port))
        fail(where, `${c.name}.${probe} uses port name ${port}, not declared`);
    }
    for (const e of c.env ?? []) {
      const ref = e.valueFrom?.resourceFieldRef;
      if (ref && ref.containerName && !names.has(ref.containerName))
        fail(where, `env ${e.name}: resourceFieldRef names container ${ref.containerName}`);
    }
  }
  for (const v of pod.spec.volumes ?? []) {
    const cm = v.configMap?.name;
    if (cm && byKind("ConfigMap").length && !byKind("ConfigMap").some((d) => d.doc.metadata.name === cm))
      fail(where, `volume ${v.name} needs ConfigMap ${cm}, which is not among the documents`);
  }
  // Rolling updates drop nothing (docker/README.md "Swarm" proves the same settings live):
  // a new pod is ready before an old one goes, readiness is /readyz (503 while warming and
  // draining), and a preStop pause lets the endpoint leave the Service before SIGTERM.
  const ru = doc.spec.strategy?.rollingUpdate;
  if (doc.spec.strategy?.type !== "RollingUpdate" || ru?.maxUnavailable !== 0 || !ru?.maxSurge)
    fail(where, `strategy must be RollingUpdate with maxUnavailable 0 and maxSurge >= 1, ` +
      `got ${JSON.stringify(doc.spec.strategy)}`);
  else pass(`${where}: rolling update maxUnavailable 0, maxSurge ${ru.maxSurge}`);
  for (const c of pod.spec.containers) {
    const rp = c.readinessProbe?.httpGet;
    if (rp?.path !== "/readyz") fail(where, `${c.name}.readinessProbe must GET /readyz, got ${JSON.stringify(rp)}`);
    else pass(`${where}: ${c.name} readiness on /readyz`);
    const cmd = c.lifecycle?.preStop?.exec?.command ?? [];
    const pause = cmd[0] === "sleep" ? Number(cmd[1]) : c.lifecycle?.preStop?.sleep?.seconds;
    if (!(pause >= 1)) fail(where, `${c.name}: preStop must pause (sleep N, N >= 1), got ${JSON.stringify(c.lifecycle?.preStop)}`);
    else pass(`${where}: ${c.name} preStop pauses ${pause} s before SIGTERM`);
  }
  // Graceful shutdown fits: preStop sleep + shutdown_grace_s + 5 s of flushing answers.
  for (const cmDoc of byKind("ConfigMap")) {
    const json = cmDoc.doc.data?.["vggserve.json"];
    if (!json) continue;
    const grace = JSON.parse(json).shutdown_grace_s ?? 30;
    const sleep = pod.spec.containers
      .map((c) => Number(c.lifecycle?.preStop?.exec?.command?.[1] ?? 0))
      .reduce((a, b) => Math.max(a, b), 0);
    const need = sleep + grace + 5;
    const have = pod.spec.terminationGracePeriodSeconds ?? 30;
    if (have < need)
      fail(where, `terminationGracePeriodSeconds ${have} < preStop ${sleep} + shutdown_grace_s ${grace} + 5`);
    else pass(`${where}: terminationGracePeriodSeconds ${have} >= ${sleep} + ${grace} + 5`);
  }
}
for (const { where, doc } of byKind("Service")) {
  const pods = byKind("Deployment").filter((d) => matches(doc.spec.selector, d.doc.spec.template.metadata.labels));
  if (byKind("Deployment").length && pods.length === 0) fail(where, "selector matches no Deployment's pods");
}
for (const { where, doc } of [...byKind("HorizontalPodAutoscaler"), ...byKind("PodDisruptionBudget")]) {
  const ref = doc.spec.scaleTargetRef;
  if (ref && byKind(ref.kind).length && !byKind(ref.kind).some((d) => d.doc.metadata.name === ref.name))
    fail(where, `scaleTargetRef ${ref.kind}/${ref.name} is not among the documents`);
  const sel = doc.spec.selector?.matchLabels;
  if (sel && byKind("Deployment").length &&
      !byKind("Deployment").some((d) => matches(sel, d.doc.spec.template.metadata.labels)))
    fail(where, "selector matches no Deployment's pods");
}

const envOf = (c) => Object.fromEntries((c.env ?? []).filter((e) => "value" in e).map((e) => [e.name, e.value]));

// The model repository: the Deployment's pods mount a PVC among the documents at /models,
// read-only, and are told it is a repository (VGGSERVE_MODEL_REPOSITORY=/models).
if (requireRepository) {
  const claims = new Set(byKind("PersistentVolumeClaim").map((d) => d.doc.metadata.name));
  if (byKind("Deployment").length === 0) fail("--repository", "no Deployment among the documents");
  for (const { where, doc } of byKind("Deployment")) {
    const pod = doc.spec.template.spec;
    const bad = [];
    for (const c of pod.containers) {
      const mount = (c.volumeMounts ?? []).find((m) => m.mountPath === "/models");
      const vol = mount && (pod.volumes ?? []).find((v) => v.name === mount.name);
      if (!vol) bad.push(`${c.name}: nothing mounted at /models`);
      else if (!vol.persistentVolumeClaim || !claims.has(vol.persistentVolumeClaim.claimName))
        bad.push(`${c.name}: /models is not a PersistentVolumeClaim among the documents (${JSON.stringify(vol)})`);
      else if (Object.keys(vol).length !== 2) bad.push(`volume ${vol.name} has more than one source`);
      else if (!mount.readOnly) bad.push(`${c.name}: /models must be mounted read-only`);
      if (envOf(c).VGGSERVE_MODEL_REPOSITORY !== "/models") bad.push(`${c.name}: VGGSERVE_MODEL_REPOSITORY is not /models`);
    }
    if (bad.length) fail(where, bad.join("; "));
    else pass(`${where}: serves the repository of PVC ${[...claims].join(", ")} at /models, read-only`);
  }
}

// KServe multi-model: the predictor is vggserve in explicit mode on the agent's model dir, with
// no storage initializer, and the TrainedModels' memory fits under its limit (KServe's check).
for (const { where, doc } of byKind("InferenceService")) {
  const c = doc.spec?.predictor?.containers?.[0];
  const env = envOf(c ?? {});
  if (env.MULTI_MODEL_SERVER !== "true") continue;
  const bad = [];
  if ("STORAGE_URI" in env) bad.push("STORAGE_URI set (a multi-model predictor gets no storage initializer)");
  if (env.VGGSERVE_MODEL_CONTROL_MODE !== "explicit") bad.push("VGGSERVE_MODEL_CONTROL_MODE must be explicit (the agent loads through the API)");
  if (env.VGGSERVE_MODEL_REPOSITORY !== "/mnt/models") bad.push("VGGSERVE_MODEL_REPOSITORY must be /mnt/models (the agent's model dir)");
  if (!(c.ports ?? []).some((p) => p.containerPort === 8080)) bad.push("the agent loads on localhost:8080, which is not a container port");
  const models = byKind("TrainedModel").filter((d) => d.doc.spec?.inferenceService === doc.metadata.name);
  const need = models.reduce((sum, d) => sum + bytes(d.doc.spec.model.memory), 0);
  const limit = bytes(c.resources?.limits?.memory);
  if (!(need <= limit)) bad.push(`TrainedModels need ${need} bytes, over the memory limit ${limit}`);
  if (bad.length) fail(where, bad.join("; "));
  else pass(`${where}: multi-model predictor, explicit mode on /mnt/models, ${models.length} TrainedModel(s) within the memory limit`);
}
for (const { where, doc } of byKind("TrainedModel")) {
  const isvc = byKind("InferenceService").find((d) => d.doc.metadata.name === doc.spec?.inferenceService);
  if (!isvc) fail(where, `spec.inferenceService ${doc.spec?.inferenceService} is not among the documents`);
  else if (envOf(isvc.doc.spec.predictor.containers[0]).MULTI_MODEL_SERVER !== "true")
    fail(where, `InferenceService ${isvc.doc.metadata.name} is not a multi-model server (MULTI_MODEL_SERVER)`);
}

console.log(`${passes} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);
