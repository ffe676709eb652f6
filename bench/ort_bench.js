#!/usr/bin/env node
// ort_bench.js - ONNX Runtime (npm onnxruntime-node, CPU) throughput on an ONNX export, printed
// as JSON lines in the shape of `vggserve bench --json`, so bench/engines.sh treats both alike.
//
//   NODE_PATH=DIR/node_modules node bench/ort_bench.js --model W.onnx [--batch 1,8,16]
//       [--seconds 10] [--min-runs 3] [--warmup 2] [--threads 2] [--check PREFIX]
//
// For each batch size: --warmup untimed runs, then timed session.run() calls until --seconds
// have passed and at least --min-runs were made; img/s of the slowest and the median run.
// --check PREFIX compares ORT's logits for PREFIX.input.f32 with torch's PREFIX.logits.f32
// (written by export_onnx.py --check) and fails on a mismatch.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

function parseArgs(argv) {
  const a = { model: null, batch: '1,8,16', seconds: 10, minRuns: 3, warmup: 2, threads: 2, check: null };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i], v = argv[i + 1];
    switch (k) {
      case '--model': a.model = v; i++; break;
      case '--batch': a.batch = v; i++; break;
      case '--seconds': a.seconds = Number(v); i++; break;
      case '--min-runs': a.minRuns = Number(v); i++; break;
      case '--warmup': a.warmup = Number(v); i++; break;
      case '--threads': a.threads = Number(v); i++; break;
      case '--check': a.check = v; i++; break;
      default: console.error(`ort_bench.js: unknown option ${k}`); process.exit(2);
    }
  }
  if (!a.model) { console.error('ort_bench.js: --model FILE.onnx is required'); process.exit(2); }
  a.batches = String(a.batch).split(/[ ,]+/).filter(Boolean).map(Number);
  return a;
}

function readF32(path) {
  const b = fs.readFileSync(path);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

// Deterministic N(0,1)-ish input (the values do not change the work a dense CNN does).
function makeInput(n) {
  const x = new Float32Array(n * 3 * 224 * 224);
  let s = 42 >>> 0;
  for (let i = 0; i < x.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    x[i] = (s / 4294967296 - 0.5) * 3.46;
  }
  return x;
}

const nowS = () => Number(process.hrtime.bigint()) / 1e9;

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const session = await ort.InferenceSession.create(a.model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: a.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const inName = session.inputNames[0], outName = session.outputNames[0];
  const version = (ort.env.versions && ort.env.versions.node) || 'unknown';

  if (a.check) {
    const x = readF32(a.check + '.input.f32'), want = readF32(a.check + '.logits.f32');
    const n = x.length / (3 * 224 * 224);
    const out = await session.run({ [inName]: new ort.Tensor('float32', x, [n, 3, 224, 224]) });
    const got = out[outName].data;
    let maxDiff = 0, maxRef = 0;
    for (let i = 0; i < want.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[i]));
      maxRef = Math.max(maxRef, Math.abs(want[i]));
    }
    const ok = got.length === want.length && maxDiff <= 1e-3 * Math.max(1, maxRef);
    console.error(`ort_bench.js: check vs torch on ${n} inputs: max |logit diff| ${maxDiff.toExponential(2)}` +
                  ` (max |logit| ${maxRef.toFixed(3)}): ${ok ? 'ok' : 'MISMATCH'}`);
    if (!ok) process.exit(1);
  }

  const maxB = Math.max(...a.batches);
  const full = makeInput(maxB);
  for (const n of a.batches) {
    const feeds = { [inName]: new ort.Tensor('float32', full.subarray(0, n * 3 * 224 * 224), [n, 3, 224, 224]) };
    for (let i = 0; i < a.warmup; i++) await session.run(feeds);
    const t = [];
    const start = nowS();
    while (t.length < a.minRuns || nowS() - start < a.seconds) {
      const t0 = nowS();
      await session.run(feeds);
      t.push(nowS() - t0);
    }
    t.sort((p, q) => p - q);
    const r = t.length;
    const med = r % 2 ? t[(r - 1) / 2] : (t[r / 2 - 1] + t[r / 2]) / 2;
    const rssMb = process.memoryUsage().rss / 1048576;
    console.log(`{"engine": "onnxruntime", "version": "${version}", "threads": ${a.threads}, ` +
      `"model": "vgg16", "algo": "ort", "precision": "f32", "batch": ${n}, "runs": ${r}, ` +
      `"img_per_s_min": ${(n / t[r - 1]).toFixed(3)}, "img_per_s_median": ${(n / med).toFixed(3)}, ` +
      `"img_per_s_max": ${(n / t[0]).toFixed(3)}, "ms_per_batch_median": ${(med * 1e3).toFixed(3)}, ` +
      `"rss_mb": ${rssMb.toFixed(1)}}`);
  }
}

main().catch((e) => { console.error(`ort_bench.js: ${e && e.stack || e}`); process.exit(1); });
