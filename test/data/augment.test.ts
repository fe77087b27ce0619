import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';

import {
  affineAugment,
  Augmentation,
  crop,
  hflip,
  mocoCxrAugmentation,
  normalize,
  resize,
  rotate,
} from '../../src/data/augment.js';
import { Prng } from '../../src/data/prng.js';
import * as torch from '../../src/torch/index.js';
import { maxAbsDiff, oracleMissing, runPython } from '../helpers/oracle.js';
import { assertClose, maxAbs } from '../helpers/tolerance.js';

/** A batch of smooth-ish random images, values in [0, 1]. */
function images(batch: number, channels: number, height: number, width: number, seed: number): Float32Array {
  const rng = new Prng(seed);
  const out = new Float32Array(batch * channels * height * width);
  for (let i = 0; i < out.length; i++) out[i] = rng.next();
  return out;
}

function values(t: torch.Tensor): Float32Array {
  return t.data() as Float32Array;
}

describe('rotate and resize against torchvision', { skip: oracleMissing() }, () => {
  const [height, width] = [37, 52];
  const angles = [7.3, -10, 33.5, 90];
  const rotated = images(angles.length, 2, height, width, 3);
  const shrunk = images(2, 1, 40, 30, 5);
  let expected: { rotate: number[]; resize: number[] };
  before(() => {
    // One interpreter start for both: importing torchvision is most of the cost.
    expected = runPython(
      String.raw`
import torch
from torchvision.transforms import functional as F, InterpolationMode
x = torch.tensor(INPUT['rotate'], dtype=torch.float32).view(len(INPUT['angles']), 2, INPUT['h'], INPUT['w'])
out = [F.rotate(x[i:i+1], a, interpolation=InterpolationMode.BILINEAR) for i, a in enumerate(INPUT['angles'])]
y = torch.tensor(INPUT['resize'], dtype=torch.float32).view(2, 1, 40, 30)
OUTPUT = {
  'rotate': torch.cat(out).flatten().tolist(),
  'resize': F.resize(y, [17, 23], antialias=True).flatten().tolist(),
}`,
      { rotate: Array.from(rotated), angles, h: height, w: width, resize: Array.from(shrunk) },
    );
  });

  it('rotate matches torchvision.transforms.functional.rotate (bilinear, zero fill) on every pixel', () => {
    const ours = torch.tidy(() => values(rotate(torch.tensor(rotated, [angles.length, 2, height, width]), angles)));
    // Bilinear sampling: a pixel moves by its gradient (at most the value range
    // per pixel) times the error of its sampling coordinate, which is a few
    // roundings of a number as large as the image side.
    assertClose(ours, expected.rotate, 'rotate', { ops: 8, scale: maxAbs(expected.rotate) * Math.max(height, width) });
    // Not a vacuous match: the rotation moved the pixels.
    assert.ok(maxAbsDiff(ours, rotated) > 0.5);
  });

  it('resize matches torchvision.transforms.functional.resize with antialiasing', () => {
    const ours = torch.tidy(() => values(resize(torch.tensor(shrunk, [2, 1, 40, 30]), [17, 23])));
    // Each output sums about five antialiasing taps per axis, twice.
    assertClose(ours, expected.resize, 'resize', { ops: 2 * 2 * 5 });
  });
});

describe('flip, crop and normalize', () => {
  it('hflip mirrors exactly the flagged images', () => {
    const [b, c, h, w] = [3, 2, 4, 5];
    const data = images(b, c, h, w, 1);
    const flags = [true, false, true];
    const out = torch.tidy(() => values(hflip(torch.tensor(data, [b, c, h, w]), flags)));
    for (let n = 0; n < b; n++) {
      for (let k = 0; k < c * h; k++) {
        for (let x = 0; x < w; x++) {
          const source = (n * c * h + k) * w + (flags[n] ? w - 1 - x : x);
          assert.equal(out[(n * c * h + k) * w + x], data[source]);
        }
      }
    }
  });

  it('crop cuts each image at its own offset exactly', () => {
    const [b, c, h, w] = [2, 3, 6, 7];
    const data = images(b, c, h, w, 2);
    const offsets: [number, number][] = [
      [0, 2],
      [3, 1],
    ];
    const out = torch.tidy(() => values(crop(torch.tensor(data, [b, c, h, w]), offsets, [4, 4])));
    for (let n = 0; n < b; n++) {
      const [ox, oy] = offsets[n]!;
      for (let k = 0; k < c; k++) {
        for (let y = 0; y < 4; y++) {
          for (let x = 0; x < 4; x++) {
            assert.equal(out[((n * c + k) * 4 + y) * 4 + x], data[((n * c + k) * h + oy + y) * w + ox + x]);
          }
        }
      }
    }
    assert.throws(() => crop(torch.zeros([1, 1, 5, 5]), [[2, 0]], 4), /leaves the 5x5 image 0/);
  });

  it('the one-pass affine augmentation equals flip, then rotate, then crop', () => {
    const [b, h, w] = [4, 30, 34];
    const data = images(b, 1, h, w, 9);
    const params = {
      flip: [true, false, true, false],
      angle: [5, -8.5, 0, 10],
      offset: [
        [2, 3],
        [0, 0],
        [7, 5],
        [6, 1],
      ] as [number, number][],
      size: [24, 26] as [number, number],
    };
    const [fused, sequential] = torch.tidy(() => {
      const x = torch.tensor(data, [b, 1, h, w]);
      const step = crop(rotate(hflip(x, params.flip), params.angle), params.offset, params.size);
      return [values(affineAugment(x, params)), values(step)];
    });
    // Two samplings of the same geometry (see the rotate test for the scale).
    assertClose(fused, sequential, 'fused against sequential', { ops: 16, scale: maxAbs(sequential) * Math.max(h, w) });
  });

  it('normalize: MoCo-CXR grey to 3 equal channels, ImageNet per channel', () => {
    const data = Float32Array.from([0, 0.25, 0.5, 1]);
    const [moco, imagenet] = torch.tidy(() => {
      const x = torch.tensor(data, [1, 1, 2, 2]);
      return [normalize(x, 'moco-cxr', 3), normalize(x, 'imagenet', 3)].map((t) => {
        assert.deepEqual(t.shape, [1, 3, 2, 2]);
        return values(t);
      });
    });
    const mean = [0.485, 0.456, 0.406];
    const std = [0.229, 0.224, 0.225];
    for (let k = 0; k < 3; k++) {
      for (let i = 0; i < 4; i++) {
        // A subtraction and a division in float32: the operands (at most 1) set
        // the scale, as the difference may cancel, and the division scales it by 1 / std.
        assertClose(moco![k * 4 + i]!, (data[i]! - 0.502) / 0.085585, `moco-cxr channel ${k}`, {
          ops: 3,
          scale: 1 / 0.085585,
        });
        assertClose(imagenet![k * 4 + i]!, (data[i]! - mean[k]!) / std[k]!, `imagenet channel ${k}`, {
          ops: 3,
          scale: 1 / std[k]!,
        });
      }
    }
  });
});

describe('Augmentation', () => {
  const batch = torch.tensor(images(6, 1, 40, 40, 4), [6, 1, 40, 40]);

  it('two views differ from each other but repeat for the same seed', () => {
    const augmentation = mocoCxrAugmentation(32);
    const run = (seed: number): Float32Array[] =>
      torch.tidy(() => augmentation.twoViews(batch, new Prng(seed)).map((view) => values(view)));
    const [q1, k1] = run(11);
    const [q2, k2] = run(11);
    const [q3] = run(12);
    assert.deepEqual(q1, q2);
    assert.deepEqual(k1, k2);
    assert.ok(maxAbsDiff(q1!, k1!) > 1, 'the two views of a batch differ');
    assert.ok(maxAbsDiff(q1!, q3!) > 1, 'another seed gives another view');
    const shape = torch.tidy(() => augmentation.apply(batch, new Prng(1)).shape);
    assert.deepEqual(shape, [6, 3, 32, 32]);
  });

  it('draws flips at the asked rate and angles within the range', () => {
    const augmentation = new Augmentation({ flip: 0.5, rotate: 10, crop: 30 });
    const params = augmentation.sample(4000, 40, 40, new Prng(5));
    const flips = params.flip.filter(Boolean).length;
    assert.ok(flips > 1850 && flips < 2150, `${flips} flips of 4000`);
    assert.ok(params.angle.every((a) => Math.abs(a) <= 10));
    assert.ok(Math.max(...params.angle) > 9.9 && Math.min(...params.angle) < -9.9);
    const xs = params.offset.map(([x]) => x);
    assert.deepEqual([Math.min(...xs), Math.max(...xs)], [0, 10]);
  });

  it('without flip or rotation, a view is an exact crop, then resize and normalize', () => {
    const augmentation = new Augmentation({ crop: 30, resize: 15, normalize: 'none', channels: 1 });
    const rng = new Prng(3);
    const params = augmentation.sample(6, 40, 40, new Prng(3));
    const [view, expected] = torch.tidy(() => [
      values(augmentation.apply(batch, rng)),
      values(resize(crop(batch, params.offset, 30), 15)),
    ]);
    assert.deepEqual(view, expected);
    const evaluated = torch.tidy(() => augmentation.evaluate(batch).shape);
    assert.deepEqual(evaluated, [6, 1, 15, 15]);
  });

  it("on uint8 pixels, the fused pass gives the float path's draws and view", () => {
    const [b, h, w] = [5, 30, 34];
    const rng = new Prng(21);
    const levels = Uint8Array.from({ length: b * h * w }, () => rng.below(256));
    const cases: [string, Augmentation][] = [
      [
        'flip, rotation, crop, ImageNet to 3 channels',
        new Augmentation({ flip: 0.5, rotate: 10, crop: 24, normalize: 'imagenet' }),
      ],
      ['MoCo-CXR at the full size', mocoCxrAugmentation(30, { crop: 30 })],
      ['crop alone, grey kept', new Augmentation({ crop: 20, normalize: 'moco-cxr', channels: 1 })],
    ];
    for (const [name, augmentation] of cases) {
      const fusedDraws = new Prng(4);
      const [fused, reference] = torch.tidy(() => {
        const pixels = torch.tensor(levels, [b, 1, h, w]);
        const out = augmentation.applyToPixels(pixels, fusedDraws);
        return [values(out), values(augmentation.apply(pixels.float().div(255), new Prng(4)))];
      });
      const after = new Prng(4);
      augmentation.sample(b, h, w, after);
      assert.equal(fusedDraws.next(), after.next(), `${name}: the same draws, no more`);
      assert.equal(fused.length, reference.length, name);
      // Two samplings of the same geometry (see the rotate test for the scale).
      assertClose(fused, reference, name, { ops: 16, scale: maxAbs(reference) * Math.max(h, w) });
    }
  });
});
