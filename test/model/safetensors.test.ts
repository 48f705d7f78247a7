import { describe, it, expect } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { f16round } from '@petamoriken/float16';
import {
  readSafetensors, writeSafetensors, serializeSafetensors, parseSafetensors, readSafetensorsHeader,
} from '../../src/model/safetensors.js';

/** Build a file by hand from the spec: u64 LE header length, JSON header, raw bytes. */
function handMade(header: object, data: number[]): Uint8Array {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, Buffer.from(data)]);
}

describe('safetensors', () => {
  const values = [0, 1, -2.5, 1 / 3, 1e-3, 123.456, -65504, 3e-6];

  it('round-trips float32 exactly, through a file, with metadata', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'st-'));
    try {
      const file = path.join(dir, 'w.safetensors');
      const a = Float32Array.from(values);
      await writeSafetensors(file, new Map([
        ['layer.weight', { shape: [2, 4], data: a }],
        ['scalar', { shape: [], data: [7] }],
        ['empty', { shape: [0, 3], data: [] }],
      ]), { metadata: { format: 'pt', note: 'test' } });
      const back = await readSafetensors(file);
      expect([...back.keys()].sort()).toEqual(['empty', 'layer.weight', 'scalar']);
      expect(back.get('layer.weight')!.dtype).toBe('F32');
      expect(back.get('layer.weight')!.shape).toEqual([2, 4]);
      expect([...back.get('layer.weight')!.data]).toEqual([...a]);
      expect([...back.get('scalar')!.data]).toEqual([7]);
      expect(back.get('empty')!.data.length).toBe(0);
      expect((await readSafetensorsHeader(file)).metadata).toEqual({ format: 'pt', note: 'test' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('round-trips float16 with round-to-nearest half precision and widens on read', () => {
    const buf = serializeSafetensors({ w: { shape: [10], data: [...values, 70000, 1e-8] } }, { dtype: 'F16' });
    const w = parseSafetensors(buf).get('w')!;
    expect(w.dtype).toBe('F16');
    expect(w.data).toBeInstanceOf(Float32Array);
    expect([...w.data]).toEqual([...values, 70000, 1e-8].map((v) => f16round(v)));
    expect(w.data[3]).toBe(0.333251953125); // 1/3 in half precision
    expect(w.data[8]).toBe(Infinity); // beyond the half range
    expect(w.data[9]).toBe(0); // below the smallest subnormal
    // Half the bytes of float32 (plus header).
    const f32 = serializeSafetensors({ w: { shape: [10], data: values.concat([1, 2]) } });
    expect(f32.length - buf.length).toBeGreaterThanOrEqual(20);
  });

  it('writes the header the spec describes: u64 LE length, 8-byte aligned JSON, sorted contiguous offsets', () => {
    const buf = serializeSafetensors(
      { b: { shape: [3], data: [1, 2, 3] }, a: { shape: [1, 2], data: [4, 5], dtype: 'F32' }, ids: { shape: [2], data: [0, 1], dtype: 'I64' } },
      { dtype: 'F16', metadata: { k: 'v' } },
    );
    const n = Number(buf.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
    expect(header.__metadata__).toEqual({ k: 'v' });
    expect(header.a).toEqual({ dtype: 'F32', shape: [1, 2], data_offsets: [0, 8] });
    expect(header.b).toEqual({ dtype: 'F16', shape: [3], data_offsets: [8, 14] });
    expect(header.ids).toEqual({ dtype: 'I64', shape: [2], data_offsets: [14, 30] });
    expect(buf.length).toBe(8 + n + 30);
    expect(buf.readFloatLE(8 + n)).toBe(4);
    expect(buf.readBigInt64LE(8 + n + 22)).toBe(1n);
  });

  it('reads a hand-made file with F32, F16, BF16 and I64 tensors', () => {
    const f32 = Buffer.alloc(8);
    f32.writeFloatLE(1.5, 0);
    f32.writeFloatLE(-0.25, 4);
    const bytes = [
      ...f32,
      0x00, 0x3c, 0x00, 0xc0, // F16: 1.0, -2.0
      0xc0, 0x3f, 0x49, 0x40, // BF16: 1.5, 3.140625
      0x4d, 0, 0, 0, 0, 0, 0, 0, // I64: 77
    ];
    const file = handMade({
      x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      h: { dtype: 'F16', shape: [2], data_offsets: [8, 12] },
      bf: { dtype: 'BF16', shape: [2, 1], data_offsets: [12, 16] },
      pos: { dtype: 'I64', shape: [1, 1], data_offsets: [16, 24] },
    }, bytes);
    const t = parseSafetensors(file);
    expect([...t.get('x')!.data]).toEqual([1.5, -0.25]);
    expect([...t.get('h')!.data]).toEqual([1, -2]);
    expect([...t.get('bf')!.data]).toEqual([1.5, 3.140625]);
    expect(t.get('bf')!.dtype).toBe('BF16');
    expect([...t.get('pos')!.data]).toEqual([77]);
    expect([...parseSafetensors(file, (n) => n === 'h').keys()]).toEqual(['h']);
  });

  it('round-trips bfloat16 with rounding', () => {
    const t = parseSafetensors(serializeSafetensors({ w: { shape: [3], data: [1, 1 / 3, -1000.5], dtype: 'BF16' } })).get('w')!;
    expect(t.dtype).toBe('BF16');
    expect(t.data[0]).toBe(1);
    expect(Math.abs(t.data[1]! - 1 / 3)).toBeLessThan(2 ** -9);
    expect(Math.abs(t.data[2]! + 1000.5)).toBeLessThan(4);
  });

  it('rejects truncated files, bad offsets and mismatched sizes', () => {
    expect(() => parseSafetensors(new Uint8Array(4))).toThrow(/shorter/);
    const ok = handMade({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, new Array(8).fill(0));
    expect(() => parseSafetensors(ok.subarray(0, ok.length - 1))).toThrow(/does not fit/);
    expect(() => parseSafetensors(handMade({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Array(8).fill(0)))).toThrow(/does not fit/);
    expect(() => parseSafetensors(handMade({ x: { dtype: 'C64', shape: [1], data_offsets: [0, 8] } }, new Array(8).fill(0)))).toThrow(/dtype/);
    expect(() => serializeSafetensors({ x: { shape: [3], data: [1, 2] } })).toThrow(/2 values for 3/);
  });
});
