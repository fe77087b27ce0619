import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { describe, it } from 'node:test';

import { decodeImage } from '../../src/data/decode.js';
import {
  generatePhantoms,
  parsePhantomLocation,
  phantomLabels,
  phantomNoiseSeed,
  phantomParams,
  renderPhantoms,
  type PhantomParams,
} from '../../src/data/phantoms.js';
import { openSource } from '../../src/data/sources/index.js';
import { type Tensor } from '../../src/torch/index.js';
import { maxAbsDiff, tempDir } from '../helpers/oracle.js';

const SIZE = 64;

function pixels(t: Tensor): Float32Array {
  const values = t.data() as Float32Array;
  t.dispose();
  return values;
}

/** Sums of a [size, size] difference image over its halves and its upper quarter, and its mass centre's row. */
function where(diff: Float32Array, offset: number, size: number) {
  let left = 0;
  let right = 0;
  let upperQuarter = 0;
  let rowMoment = 0;
  let lowest = 0;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const d = diff[offset + y * size + x]!;
      lowest = Math.min(lowest, d);
      if (x < size / 2) left += d;
      else right += d;
      if (y < size / 4) upperQuarter += Math.abs(d);
      rowMoment += d * (y + 0.5);
    }
  }
  return { left, right, total: left + right, upperQuarter, centreRow: rowMoment / (left + right), lowest };
}

describe('phantoms', () => {
  it('are the same for a seed, whatever batch they are drawn in, and differ between seeds', () => {
    const all = generatePhantoms(3, 0, 6, { size: SIZE });
    const again = generatePhantoms(3, 0, 6, { size: SIZE });
    const part = generatePhantoms(3, 2, 2, { size: SIZE });
    const other = generatePhantoms(4, 0, 6, { size: SIZE });
    const [a, b, c, d] = [all, again, part, other].map((batch) => pixels(batch.images));
    assert.deepEqual(all.images.isDisposed, true);
    assert.deepEqual(a, b);
    assert.deepEqual(all.labels, again.labels);
    assert.ok(maxAbsDiff(a!.subarray(2 * SIZE * SIZE, 4 * SIZE * SIZE), c!) < 1e-6);
    assert.ok(maxAbsDiff(a!, d!) > 0.3);
    assert.ok(a!.every((v) => v >= 0 && v <= 1));
  });

  it('label effusions as drawn: about half, on the right, the left or both, of varied size', () => {
    const params = Array.from({ length: 600 }, (_, i) => phantomParams(11, i));
    const labels = params.map(phantomLabels);
    const positives = labels.filter((l) => l['Pleural Effusion'] === 1).length;
    assert.ok(positives > 250 && positives < 350, `${positives} of 600`);
    const right = params.filter((p) => p.effusionRight > 0 && p.effusionLeft === 0).length;
    const left = params.filter((p) => p.effusionLeft > 0 && p.effusionRight === 0).length;
    const both = params.filter((p) => p.effusionLeft > 0 && p.effusionRight > 0).length;
    assert.ok(right > 80 && left > 80 && both > 10, `${right} right, ${left} left, ${both} both`);
    const sizes = params.map((p) => p.effusionRight).filter((s) => s > 0);
    assert.ok(Math.min(...sizes) < 0.2 && Math.max(...sizes) > 0.9);
    const enlarged = labels.filter((l) => l.Cardiomegaly === 1).length;
    assert.ok(enlarged > 100 && enlarged < 200, `${enlarged} with cardiomegaly`);
  });

  it('an effusion brightens only the lung base on its own side, more for a larger one', () => {
    // The same patients rendered with no effusion, then with one on the patient's right (viewer's left).
    const base = Array.from({ length: 4 }, (_, i) => ({ ...phantomParams(5, i), effusionRight: 0, effusionLeft: 0 }));
    const seeds = base.map((_, i) => phantomNoiseSeed(5, i));
    const render = (edit: (p: PhantomParams) => PhantomParams): Float32Array =>
      pixels(renderPhantoms(base.map(edit), seeds, SIZE));
    const dry = render((p) => p);
    const sums = [0.15, 0.5, 0.95].map((amount) => {
      const wet = render((p) => ({ ...p, effusionRight: amount }));
      const diff = wet.map((v, i) => v - dry[i]!);
      return base.map((_, b) => where(diff, b * SIZE * SIZE, SIZE));
    });
    for (const perImage of sums) {
      for (const region of perImage) {
        assert.ok(region.total > 1, `an effusion adds brightness (${region.total})`);
        assert.ok(region.left > 0.9 * region.total, 'on the viewer-left half (the patient right)');
        assert.ok(region.centreRow > 0.55 * SIZE, `at the lung base (centre at row ${region.centreRow})`);
        assert.ok(region.upperQuarter < 1e-3, 'the upper lung is unchanged');
        assert.ok(region.lowest > -0.05, 'nothing darkens');
      }
    }
    for (let b = 0; b < base.length; b++) {
      assert.ok(sums[0]![b]!.total < sums[1]![b]!.total && sums[1]![b]!.total < sums[2]![b]!.total);
    }
  });

  it('a style changes the pose and mirroring, not the anatomy or the findings; a mirrored film is the flipped one', () => {
    const count = 400;
    const standard = Array.from({ length: count }, (_, i) => phantomParams(11, i));
    const posed = Array.from({ length: count }, (_, i) => phantomParams(11, i, { style: 'posed' }));
    const pose = new Set(['angle', 'scale', 'shiftX', 'shiftY', 'mirror']);
    for (let i = 0; i < count; i++) {
      for (const key of Object.keys(standard[i]!) as (keyof PhantomParams)[]) {
        if (!pose.has(key)) assert.equal(posed[i]![key], standard[i]![key], `${key} of phantom ${i}`);
      }
      assert.equal(standard[i]!.mirror, 0);
      assert.deepEqual(phantomLabels(posed[i]!), phantomLabels(standard[i]!));
    }
    const mirrored = posed.filter((p) => p.mirror === 1).length;
    assert.ok(mirrored > 150 && mirrored < 250, `${mirrored} of ${count} mirrored`);
    const widest = Math.max(...posed.map((p) => Math.abs(p.angle)));
    assert.ok(widest > (9 * Math.PI) / 180 && widest <= (10 * Math.PI) / 180, `widest rotation ${widest}`);

    // The same film mirrored or not: the anatomy flips, the grain (drawn after the flip) does not.
    const index = posed.findIndex((p) => p.mirror === 1);
    const film = { ...posed[index]!, grain: 0 };
    const seeds = [phantomNoiseSeed(11, index), phantomNoiseSeed(11, index)];
    const both = pixels(renderPhantoms([film, { ...film, mirror: 0 }], seeds, SIZE));
    const flipped = both.subarray(0, SIZE * SIZE);
    const upright = both.subarray(SIZE * SIZE);
    const mirror = new Float32Array(SIZE * SIZE);
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) mirror[y * SIZE + x] = upright[y * SIZE + SIZE - 1 - x]!;
    }
    assert.deepEqual(flipped, mirror);
    assert.ok(maxAbsDiff(flipped, upright) > 0.1, 'the film is not symmetric, so the mirror shows');
  });

  it('the steady style holds exposure, grain and scale nearly fixed and fades the mottle; anatomy and findings stay', () => {
    const count = 400;
    const posed = Array.from({ length: count }, (_, i) => phantomParams(12, i, { style: 'posed' }));
    const steady = Array.from({ length: count }, (_, i) => phantomParams(12, i, { style: 'steady' }));
    const drawnByStyle = new Set(['scale', 'gamma', 'contrast', 'brightness', 'grain', 'mottle']);
    for (let i = 0; i < count; i++) {
      for (const key of Object.keys(posed[i]!) as (keyof PhantomParams)[]) {
        if (!drawnByStyle.has(key)) assert.equal(steady[i]![key], posed[i]![key], `${key} of phantom ${i}`);
      }
      assert.deepEqual(phantomLabels(steady[i]!), phantomLabels(posed[i]!));
    }
    const spread = (key: keyof PhantomParams, of: PhantomParams[]): number =>
      Math.max(...of.map((p) => p[key])) - Math.min(...of.map((p) => p[key]));
    for (const key of ['gamma', 'contrast', 'brightness', 'grain', 'scale'] as const) {
      assert.ok(
        spread(key, steady) < spread(key, posed) / 2.5,
        `${key}: ${spread(key, steady)} vs ${spread(key, posed)}`,
      );
    }
    assert.equal(posed[0]!.mottle, 0.07);
    assert.equal(steady[0]!.mottle, 0.02);

    // The mottle is the only texture the style fades: the same film with the posed strength differs in the lungs.
    const seeds = [phantomNoiseSeed(12, 0), phantomNoiseSeed(12, 0)];
    const both = pixels(renderPhantoms([steady[0]!, { ...steady[0]!, mottle: 0.07 }], seeds, SIZE));
    const difference = maxAbsDiff(both.subarray(0, SIZE * SIZE), both.subarray(SIZE * SIZE));
    assert.ok(difference > 0.005 && difference < 0.1, `mottle difference ${difference}`);
  });

  it('a phantom: source writes labelled PNGs once and reuses them', async () => {
    const dir = tempDir();
    try {
      const source = await openSource('phantom:10,7,48', { imageRoot: dir.path });
      assert.equal(source.records.length, 10);
      assert.deepEqual(source.tasks, ['Pleural Effusion', 'Cardiomegaly']);
      const expected = generatePhantoms(7, 0, 10, { size: 48 });
      expected.images.dispose();
      assert.deepEqual(
        source.records.map((r) => r.labels),
        expected.labels,
      );
      const image = await decodeImage(source.records[3]!.path);
      assert.deepEqual([image.width, image.height], [48, 48]);
      const written = statSync(source.records[0]!.path).mtimeMs;
      const reopened = await openSource('phantom:10,7,48', { imageRoot: dir.path });
      assert.equal(statSync(reopened.records[0]!.path).mtimeMs, written);
      assert.deepEqual(reopened.records, source.records);
    } finally {
      dir.cleanup();
    }
  });

  it('a malformed phantom: location is an error saying what is expected', () => {
    assert.deepEqual(parsePhantomLocation('200'), { count: 200, seed: 0, size: 128, style: 'standard' });
    assert.deepEqual(parsePhantomLocation('20, 3, 64'), { count: 20, seed: 3, size: 64, style: 'standard' });
    assert.deepEqual(parsePhantomLocation('20,3,64,posed'), { count: 20, seed: 3, size: 64, style: 'posed' });
    assert.throws(() => parsePhantomLocation('many'), /expected phantom:N\[,SEED\[,SIZE\[,STYLE\]\]\]/);
    assert.throws(
      () => parsePhantomLocation('20,3,64,tilted'),
      /unknown style 'tilted'; the styles are standard, posed/,
    );
    assert.throws(() => parsePhantomLocation('10,1,8'), /size of at least 16/);
  });
});
