import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  CODRAW_CLASSES,
  CODRAW_DEPTH_SCALE,
  EpisodeFormatError,
  codrawBackground,
  codrawClassOf,
  codrawEpisode,
  codrawPaintOrder,
  codrawPng,
  formatAbstractScene,
  loadCodraw,
  loadCodrawScenes,
  parseAbstractScene,
  renderCodraw,
  sceneToObjects,
  type CodrawObject,
  type CodrawScene,
  type RgbImage,
} from '../../src/data/index.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/codraw', import.meta.url));
const CLIPART = join(FIXTURE, 'clipart');
const rawLines = readFileSync(join(FIXTURE, 'val.jsonl'), 'utf8').trim().split('\n');
const raw = rawLines.map((l) => JSON.parse(l) as CodrawScene);

describe('CoDraw classes', () => {
  it('has 58 distinct classes; the offsets map type/subtype to classes and people collapse to one class each', () => {
    expect(CODRAW_CLASSES).toHaveLength(58);
    expect(new Set(CODRAW_CLASSES).size).toBe(58);
    expect(codrawClassOf(0, 3)).toBe(3); // sun
    expect(CODRAW_CLASSES[3]).toBe('sun');
    expect(codrawClassOf(1, 0)).toBe(8);
    expect(codrawClassOf(2, 0)).toBe(18);
    expect(codrawClassOf(2, 34)).toBe(18);
    expect(codrawClassOf(3, 7)).toBe(19);
    expect(codrawClassOf(4, 5)).toBe(25);
    expect(codrawClassOf(7, 14)).toBe(57);
    expect(() => codrawClassOf(4, 6)).toThrow(/out of range/);
    expect(codrawPng(19, 12)).toBe('hb1_12s.png');
    expect(codrawPng(22)).toBe('a_2s.png');
    expect(codrawPng(57)).toBe('t_14s.png');
  });
});

describe('parseAbstractScene / formatAbstractScene', () => {
  const strings = raw.flatMap((s) => [s.abs_t, ...s.dialog.flatMap((r) => [r.abs_b, r.abs_d])]);

  it('round-trips every abstract-scene string of the fixture exactly', () => {
    expect(strings.length).toBeGreaterThan(40);
    expect(strings.some((s) => /\.\d/.test(s))).toBe(true); // float coordinates are among them
    for (const s of strings) expect(formatAbstractScene(parseAbstractScene(s))).toBe(s);
  });

  it('parses the fields of each object and keeps values when reformatted from numbers alone', () => {
    const sc = parseAbstractScene('2,s_3s.png,0,3,0,319,74,0,0,hb1_19s.png,3,19,3,78.5,269,1,1,');
    expect(sc.trailingComma).toBe(true);
    expect(sc.items.map(({ text: _t, ...it }) => it)).toEqual([
      { png: 's_3s.png', localIdx: 0, subtypeIdx: 3, typeIdx: 0, x: 319, y: 74, z: 0, flip: 0 },
      { png: 'hb1_19s.png', localIdx: 3, subtypeIdx: 19, typeIdx: 3, x: 78.5, y: 269, z: 1, flip: 1 },
    ]);
    const edited = { ...sc, items: sc.items.map(({ text: _t, ...it }) => it) };
    expect(formatAbstractScene(edited)).toBe('2,s_3s.png,0,3,0,319,74,0,0,hb1_19s.png,3,19,3,78.5,269,1,1,');
    expect(parseAbstractScene('')).toEqual({ items: [], trailingComma: false });
    expect(formatAbstractScene({ items: [], trailingComma: false })).toBe('');
  });

  it('rejects malformed strings saying what is wrong', () => {
    expect(() => parseAbstractScene('2,s_3s.png,0,3,0,319,74,0,0')).toThrow(/2 objects need 16 fields/);
    expect(() => parseAbstractScene('1,s_3s.png,0,3,0,abc,74,0,0')).toThrow(/field x/);
    expect(() => parseAbstractScene('1,s_4s.png,0,3,0,1,74,0,0')).toThrow(/does not match/);
    expect(() => parseAbstractScene('1,s_3s.png,0,3,0,1,74,5,0')).toThrow(/depth/);
  });

  it('maps placed clip-art to episode objects, dropping palette items', () => {
    const objs = sceneToObjects(parseAbstractScene('3,s_3s.png,0,3,0,250,100,0,0,p_7s.png,1,7,1,-10000,-10000,0,0,hb0_11s.png,2,11,2,380,265.5,2,1,'));
    expect(objs).toEqual([
      { cls: 3, x: 0.5, y: 0.25, z: 0, flip: false },
      { cls: 18, x: 0.76, y: 265.5 / 400, z: 2, flip: true, subtype: 11 },
    ]);
  });
});

describe('codrawEpisode', () => {
  it('tags speakers, merges rounds that add no object into the next, drops trailing ones, starts from empty', () => {
    const scene: CodrawScene = {
      image_id: 5,
      abs_t: '',
      dialog: [
        { msg_t: 'hi', msg_d: 'hello', abs_b: '', abs_d: '' },
        { msg_t: 'a sun  top left', msg_d: 'ok', abs_b: '', abs_d: '1,s_3s.png,0,3,0,50,40,0,0,' },
        { msg_t: 'move it right', msg_d: 'done', abs_b: '', abs_d: '1,s_3s.png,0,3,0,450,40,0,0,' },
        { msg_t: 'a boy', msg_d: 'ok', abs_b: '', abs_d: '2,s_3s.png,0,3,0,450,40,0,0,hb0_2s.png,1,2,2,250,300,1,0,' },
        { msg_t: 'thanks', msg_d: 'bye', abs_b: '', abs_d: '2,s_3s.png,0,3,0,450,40,0,0,hb0_2s.png,1,2,2,250,300,1,0,' },
      ],
    };
    const ep = codrawEpisode(scene, 'val')!;
    expect(ep.id).toBe('codraw-val-5');
    expect(ep.turns.map((t) => t.text)).toEqual([
      '<teller> hi <drawer> hello <teller> a sun top left <drawer> ok',
      '<teller> move it right <drawer> done <teller> a boy <drawer> ok',
    ]);
    expect(ep.turns[0]!.objects).toEqual([{ cls: 3, x: 0.1, y: 0.1, z: 0, flip: false }]);
    // The merged turn's scene is the canvas after its last round (the sun moved, the boy added).
    expect(ep.turns[1]!.objects).toEqual([
      { cls: 3, x: 0.9, y: 0.1, z: 0, flip: false },
      { cls: 18, x: 0.5, y: 0.75, z: 1, flip: false, subtype: 2 },
    ]);
    expect(codrawEpisode({ ...scene, dialog: [scene.dialog[0]!] })).toBeNull();
  });

  it('builds the fixture episodes: every turn adds a class, tags on every round, texts cover all utterances', () => {
    const eps = loadCodraw({ dir: FIXTURE, split: 'val' });
    expect(eps.map((e) => e.id)).toEqual(raw.map((s) => `codraw-val-${s.image_id}`));
    eps.forEach((ep, k) => {
      let prev = new Set<number>();
      for (const t of ep.turns) {
        expect(t.text.startsWith('<teller> ')).toBe(true);
        expect(t.text).toMatch(/<drawer>/);
        const cls = new Set(t.objects.map((o) => o.cls));
        expect([...cls].some((c) => !prev.has(c))).toBe(true);
        prev = cls;
      }
      const rounds = raw[k]!.dialog;
      const tags = ep.turns.map((t) => t.text.match(/<teller>/g)!.length).reduce((a, b) => a + b, 0);
      expect(tags).toBeLessThanOrEqual(rounds.length);
      expect(ep.turns.length).toBeLessThan(tags + 1);
      // The last turn's scene is the drawer canvas after the last adding round.
      expect(ep.turns.at(-1)!.objects.length).toBeGreaterThan(0);
    });
    // At least one fixture episode merged rounds (more tags than turns).
    expect(eps.some((ep) => ep.turns.some((t) => t.text.match(/<teller>/g)!.length > 1))).toBe(true);
  });

  it('reads gzip splits from a configurable folder and reports bad lines with file:line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'codraw-'));
    try {
      await writeFile(join(dir, 'val.jsonl.gz'), gzipSync(rawLines.join('\n') + '\n'));
      expect(loadCodrawScenes({ dir, split: 'val' })).toHaveLength(4);
      expect(loadCodraw({ dir, split: 'val' })).toEqual(loadCodraw({ dir: FIXTURE, split: 'val' }));
      const broken = [rawLines[0], '{oops', badCanvas(rawLines[1]!), JSON.stringify({ image_id: 1 })];
      await writeFile(join(dir, 'train.jsonl'), broken.join('\n'));
      let err: unknown;
      try {
        loadCodraw({ dir, split: 'train' });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(EpisodeFormatError);
      const lines = (err as EpisodeFormatError).problems.map((p) => `${p.file.endsWith('train.jsonl')}:${p.line}`);
      expect(lines).toEqual(['true:2', 'true:3', 'true:4']);
      expect(() => loadCodraw({ dir, split: 'test' })).toThrow(/not found/);
      await copyFile(join(FIXTURE, 'val.jsonl'), join(dir, 'val2.jsonl'));
      expect(loadCodraw({ dir, split: 'val2' })).toHaveLength(4);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** The scene line with its last drawer canvas corrupted (one field short). */
function badCanvas(line: string): string {
  const s = JSON.parse(line) as CodrawScene;
  s.dialog.at(-1)!.abs_d = s.dialog.at(-1)!.abs_d.replace(/,\d+,$/, ',');
  return JSON.stringify(s);
}

function diffMask(img: RgbImage, bg: RgbImage): Uint8Array {
  const m = new Uint8Array(img.width * img.height);
  for (let i = 0; i < m.length; i++) {
    const d = Math.abs(img.data[i * 3]! - bg.data[i * 3]!) + Math.abs(img.data[i * 3 + 1]! - bg.data[i * 3 + 1]!) + Math.abs(img.data[i * 3 + 2]! - bg.data[i * 3 + 2]!);
    m[i] = d > 30 ? 1 : 0;
  }
  return m;
}

function bbox(m: Uint8Array, size: number) {
  let x0 = size, y0 = size, x1 = -1, y1 = -1;
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++)
      if (m[y * size + x]) {
        x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
      }
  return { x0, y0, x1, y1, cx: (x0 + x1 + 1) / 2, cy: (y0 + y1 + 1) / 2, w: x1 - x0 + 1, h: y1 - y0 + 1 };
}

describe('renderCodraw', () => {
  const opts = { clipartDir: CLIPART };
  const size = 200;
  const bg = codrawBackground(size, opts);
  const sun: CodrawObject = { cls: 3, x: 0.3, y: 0.35, z: 0, flip: false };

  it('draws the background alone for an empty scene, deterministically', () => {
    expect(renderCodraw([], size, opts)).toEqual(bg);
    const objs = codrawEpisode(raw[0]!, 'val')!.turns.at(-1)!.objects;
    expect(renderCodraw(objs, 64, opts)).toEqual(renderCodraw(objs, 64, opts));
  });

  it('centres a clip-art at (x * size, y * size) with the png size scaled by depth and the 500x400 stretch', () => {
    // The sun png is 104 x 104 (symmetric enough that its bounding box is the png's box).
    for (const z of [0, 1, 2] as const) {
      const m = diffMask(renderCodraw([{ ...sun, z }], size, opts), bg);
      const b = bbox(m, size);
      expect(Math.abs(b.cx - sun.x * size)).toBeLessThanOrEqual(2);
      expect(Math.abs(b.cy - sun.y * size)).toBeLessThanOrEqual(2);
      const wPng = b.w / (CODRAW_DEPTH_SCALE[z] * (size / 500));
      const hPng = b.h / (CODRAW_DEPTH_SCALE[z] * (size / 400));
      expect(wPng / hPng).toBeGreaterThan(0.85); // a round sun stays round in canvas units
      expect(wPng / hPng).toBeLessThan(1.15);
    }
    const near = bbox(diffMask(renderCodraw([{ ...sun, z: 0 }], size, opts), bg), size);
    const far = bbox(diffMask(renderCodraw([{ ...sun, z: 2 }], size, opts), bg), size);
    expect(far.w / near.w).toBeGreaterThan(0.4);
    expect(far.w / near.w).toBeLessThan(0.6);
  });

  it('mirrors a flipped clip-art about its centre', () => {
    const dog: CodrawObject = { cls: 22, x: 0.5, y: 0.6, z: 0, flip: false };
    const a = diffMask(renderCodraw([dog], size, opts), bg);
    const b = diffMask(renderCodraw([{ ...dog, flip: true }], size, opts), bg);
    let same = 0, mirrored = 0, on = 0;
    for (let y = 0; y < size; y++)
      for (let x = 0; x < size; x++) {
        if (!a[y * size + x]) continue;
        on++;
        if (b[y * size + x]) same++;
        if (b[y * size + (size - 1 - x)]) mirrored++;
      }
    expect(on).toBeGreaterThan(500);
    expect(mirrored / on).toBeGreaterThan(0.95);
    expect(same / on).toBeLessThan(0.9); // the dog is not symmetric, so the flip is visible
  });

  it('paints sky first, then far to near, whatever the list order', () => {
    const tree: CodrawObject = { cls: 17, x: 0.5, y: 0.55, z: 2, flip: false };
    const boy: CodrawObject = { cls: 18, x: 0.5, y: 0.6, z: 0, flip: false, subtype: 7 };
    const cloud: CodrawObject = { cls: 5, x: 0.5, y: 0.5, z: 0, flip: false };
    expect(codrawPaintOrder([boy, cloud, tree])).toEqual([cloud, tree, boy]);
    const a = renderCodraw([boy, tree, cloud], size, opts);
    const b = renderCodraw([tree, cloud, boy], size, opts);
    expect(a).toEqual(b);
    // At the boy's centre the boy (near) shows, not the tree behind him.
    const boyOnly = renderCodraw([boy], size, opts);
    const treeOnly = renderCodraw([tree], size, opts);
    const i = (Math.round(0.6 * size) * size + Math.round(0.5 * size)) * 3;
    const dist = (p: RgbImage, q: RgbImage) => [0, 1, 2].reduce((s, c) => s + Math.abs(p.data[i + c]! - q.data[i + c]!), 0);
    expect(dist(treeOnly, boyOnly)).toBeGreaterThan(60);
    expect(dist(a, boyOnly)).toBeLessThanOrEqual(3);
  });

  it('fails clearly when a clip-art file is missing', () => {
    expect(() => renderCodraw([{ cls: 40, x: 0.5, y: 0.5, z: 0, flip: false }], 64, opts)).toThrow(/not found.*e_4s\.png/);
  });
});
