/**
 * GEMM selection from the environment, in fresh processes: NOTELLM2_GEMM=backend runs
 * without ONNX Runtime, the default picks ORT, a bad value names the valid ones, and two
 * processes with the same seed produce identical numbers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const FIXTURE = join(__dirname, 'fixtures', 'train-tiny.ts');

function runChild(env: Record<string, string>): { status: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', FIXTURE], {
    env: { ...process.env, NOTELLM2_BACKEND: 'wasm', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

test('NOTELLM2_GEMM=backend: a process without ONNX Runtime trains on the wasm kernels', () => {
  const r = runChild({ NOTELLM2_GEMM: 'backend' });
  assert.equal(r.status, 0, r.err);
  const res = JSON.parse(r.out.trim().split('\n').pop() as string);
  assert.equal(res.backend, 'wasm');
  assert.equal(res.gemm.active, 'backend');
  assert.equal(res.gemm.calls.ort, 0);
  assert.ok(res.gemm.calls.backend > 0);
  assert.equal(res.gemm.ortVersion, undefined, 'ONNX Runtime was never loaded');
  assert.ok(res.losses.every(Number.isFinite));
});

test('default selection loads ONNX Runtime; same seed in two processes gives identical numbers', () => {
  const r1 = runChild({ NOTELLM2_GEMM: '' });
  const r2 = runChild({ NOTELLM2_GEMM: 'ort' });
  assert.equal(r1.status, 0, r1.err);
  assert.equal(r2.status, 0, r2.err);
  const a = JSON.parse(r1.out.trim().split('\n').pop() as string);
  const b = JSON.parse(r2.out.trim().split('\n').pop() as string);
  assert.equal(a.gemm.active, 'ort');
  assert.equal(a.gemm.ortVersion, '1.30.0');
  assert.deepEqual(a.losses, b.losses);
  assert.deepEqual(a.params, b.params);
});

test('an unknown NOTELLM2_GEMM is an error that lists the valid values', () => {
  const r = runChild({ NOTELLM2_GEMM: 'blas' });
  assert.equal(r.status, 2);
  assert.match(r.err, /"blas" is not one of ort, backend, auto/);
});

test('NOTELLM2_SIMD=0 turns the SIMD kernels off; a bad value is an error naming the variable', () => {
  const off = runChild({ NOTELLM2_SIMD: '0' });
  assert.equal(off.status, 0, off.err);
  assert.equal(JSON.parse(off.out.trim().split('\n').pop() as string).simd, false);
  const on = runChild({ NOTELLM2_SIMD: '' });
  assert.equal(JSON.parse(on.out.trim().split('\n').pop() as string).simd, true);
  const bad = runChild({ NOTELLM2_SIMD: '7' });
  assert.notEqual(bad.status, 0);
  assert.match(bad.err, /NOTELLM2_SIMD must be 1 or 0, got "7"/);
});
