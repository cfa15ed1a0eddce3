#!/usr/bin/env node
// Reference runner: ONNX Runtime (CPU) on a model with .npy inputs; writes .npy outputs
// and/or prints latency. Used by the tests (golden outputs) and bench/ (the peer).
//
//   node ort_run.js MODEL.onnx --input x.npy [--input y.npy] [--out-dir DIR]
//        [--shape 1x3x224x224] [--threads N] [--repeat N --warmup W] [--no-opt]
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

const DTYPES = { '<f4': 'float32', '<i8': 'int64', '<i4': 'int32', '|u1': 'uint8', '|i1': 'int8',
                 '<f8': 'float64', '|b1': 'bool' };
const ARRAYS = { float32: Float32Array, int64: BigInt64Array, int32: Int32Array, uint8: Uint8Array,
                 int8: Int8Array, float64: Float64Array, bool: Uint8Array };

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', hstart, hstart + hlen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map(s => s.trim())
    .filter(s => s.length).map(Number);
  const type = DTYPES[descr];
  if (!type) throw new Error(`${file}: unsupported dtype ${descr}`);
  const data = buf.subarray(hstart + hlen);
  const copy = new Uint8Array(data.length);
  copy.set(data);
  return new ort.Tensor(type, new ARRAYS[type](copy.buffer), shape);
}

function writeNpy(file, tensor) {
  const descr = Object.keys(DTYPES).find(k => DTYPES[k] === tensor.type);
  const dims = tensor.dims.length === 1 ? `${tensor.dims[0]},` : tensor.dims.join(', ');
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${dims}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1; pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const data = Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), data]));
}

function parseArgs(argv) {
  const a = { inputs: [], threads: 1, repeat: 0, warmup: 3, outDir: null, shape: null, opt: true };
  a.model = argv[0];
  for (let i = 1; i < argv.length; i++) {
    const k = argv[i], v = argv[i + 1];
    if (k === '--input') { a.inputs.push(v); i++; }
    else if (k === '--out-dir') { a.outDir = v; i++; }
    else if (k === '--threads') { a.threads = Number(v); i++; }
    else if (k === '--repeat') { a.repeat = Number(v); i++; }
    else if (k === '--warmup') { a.warmup = Number(v); i++; }
    else if (k === '--shape') { a.shape = v.split('x').map(Number); i++; }
    else if (k === '--no-opt') { a.opt = false; }
    else throw new Error(`unknown option ${k}`);
  }
  if (!a.model) throw new Error('usage: ort_run.js MODEL.onnx --input x.npy ...');
  return a;
}

function syntheticInput(shape) {
  // same generator as qcal's --repeat synthetic input (xorshift, fixed seed)
  const n = shape.reduce((x, y) => x * y, 1);
  const out = new Float32Array(n);
  let s = 0x9E3779B97F4A7C15n;
  const M = (1n << 64n) - 1n;
  for (let i = 0; i < n; i++) {
    s ^= (s << 13n) & M; s ^= s >> 7n; s ^= (s << 17n) & M;
    out[i] = Number((s >> 40n) & 0xffffffn) / 8388608.0 - 1.0;
  }
  return new ort.Tensor('float32', out, shape);
}

async function runManifest(file) {
  // [{model, inputs: [npy...], outDir}] run in one process (node + ORT start once)
  const jobs = JSON.parse(fs.readFileSync(file, 'utf8'));
  for (const job of jobs) {
    const session = await ort.InferenceSession.create(job.model, { intraOpNumThreads: 1 });
    const feeds = {};
    session.inputNames.forEach((name, i) => { feeds[name] = readNpy(job.inputs[i]); });
    const results = await session.run(feeds);
    fs.mkdirSync(job.outDir, { recursive: true });
    for (const name of session.outputNames)
      writeNpy(path.join(job.outDir, name.replace(/[^A-Za-z0-9_.-]/g, '_') + '.npy'), results[name]);
  }
  console.log(`ort_run: ${jobs.length} models run`);
}

(async () => {
  if (process.argv[2] === '--manifest') return runManifest(process.argv[3]);
  const a = parseArgs(process.argv.slice(2));
  const session = await ort.InferenceSession.create(a.model, {
    intraOpNumThreads: a.threads, interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: a.opt ? 'all' : 'disabled',
  });
  const feeds = {};
  session.inputNames.forEach((name, i) => {
    if (i < a.inputs.length) feeds[name] = readNpy(a.inputs[i]);
    else if (a.shape) feeds[name] = syntheticInput(a.shape);
    else throw new Error(`no data for input ${name}`);
  });
  let results = await session.run(feeds);
  if (a.repeat > 0) {
    for (let i = 0; i < a.warmup; i++) await session.run(feeds);
    const times = [];
    for (let i = 0; i < a.repeat; i++) {
      const t0 = process.hrtime.bigint();
      results = await session.run(feeds);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    times.sort((x, y) => x - y);
    const mean = times.reduce((x, y) => x + y, 0) / times.length;
    console.log(`latency_ms median ${times[Math.floor(times.length / 2)].toFixed(3)} mean ${mean.toFixed(3)} ` +
                `min ${times[0].toFixed(3)} max ${times[times.length - 1].toFixed(3)} runs ${times.length} threads ${a.threads}`);
  }
  if (a.outDir) {
    fs.mkdirSync(a.outDir, { recursive: true });
    for (const name of session.outputNames)
      writeNpy(path.join(a.outDir, name.replace(/[^A-Za-z0-9_.-]/g, '_') + '.npy'), results[name]);
  }
})().catch(e => { console.error(`ort_run: ${e.message}`); process.exit(1); });
