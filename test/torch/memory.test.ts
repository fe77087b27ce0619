/**
 * Tensor lifetimes: what `tidy` frees and what it hands back, `keep`, `dispose`,
 * and a long training loop whose memory stays flat.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';

import * as torch from '../../src/torch/index.js';

type Tensor = torch.Tensor;

describe('tidy', () => {
  it('frees what was made inside and keeps the returned tensor', () => {
    let made: Tensor[] = [];
    const result = torch.tidy(() => {
      const a = torch.ones([3]);
      const b = a.mul(2);
      made = [a, b];
      return b.add(1);
    });
    assert.deepEqual(
      made.map((t) => t.isDisposed),
      [true, true],
    );
    assert.equal(result.isDisposed, false);
    assert.deepEqual(result.toArray(), [3, 3, 3]);
    result.dispose();
    assert.equal(result.isDisposed, true);
  });

  it('keeps tensors nested in arrays, plain objects and Maps', () => {
    let scratch: Tensor | undefined;
    const out = torch.tidy(() => {
      scratch = torch.zeros([1]);
      return {
        list: [torch.ones([1]), { deeper: torch.full([1], 2) }],
        map: new Map([['k', torch.full([1], 3)]]),
        label: 'kept',
      };
    });
    assert.equal(scratch?.isDisposed, true);
    const [first, inner] = out.list as [Tensor, { deeper: Tensor }];
    const third = out.map.get('k') as Tensor;
    assert.deepEqual([first.item(), inner.deeper.item(), third.item()], [1, 2, 3]);
    torch.dispose(out);
    assert.ok(first.isDisposed && inner.deeper.isDisposed && third.isDisposed);
  });

  it('keeps returned tensors at any depth, in Sets, class instances and cycles', () => {
    class Output {
      constructor(
        readonly logits: Tensor,
        readonly extras: Set<Tensor>,
      ) {}
    }
    const out = torch.tidy(() => {
      let deep: unknown = torch.full([1], 12);
      for (let level = 0; level < 12; level++) deep = level % 2 === 0 ? [deep] : { inner: deep };
      const cycle: { self?: unknown; t: Tensor } = { t: torch.full([1], 7) };
      cycle.self = cycle;
      torch.zeros([1]);
      return { deep, cycle, output: new Output(torch.full([1], 3), new Set([torch.full([1], 4)])) };
    });
    let deep = out.deep;
    while (!(deep instanceof torch.Tensor)) {
      deep = Array.isArray(deep) ? (deep[0] as unknown) : (deep as { inner: unknown }).inner;
    }
    const extra = [...out.output.extras][0] as Tensor;
    assert.deepEqual([deep.item(), out.cycle.t.item(), out.output.logits.item(), extra.item()], [12, 7, 3, 4]);
    torch.dispose([deep, out.cycle, out.output.logits, out.output.extras]);
    assert.ok(deep.isDisposed && out.cycle.t.isDisposed && out.output.logits.isDisposed && extra.isDisposed);
  });

  it('hands tensors returned by a nested scope to the enclosing one', () => {
    let fromInner: Tensor | undefined;
    let innerScratch: Tensor | undefined;
    const kept = torch.tidy(() => {
      fromInner = torch.tidy(() => {
        innerScratch = torch.ones([2]);
        return innerScratch.add(1);
      });
      assert.equal(innerScratch?.isDisposed, true);
      assert.equal(fromInner.isDisposed, false);
      return fromInner.mul(3);
    });
    // The outer scope did not return it, so it went with the outer scope.
    assert.equal(fromInner?.isDisposed, true);
    assert.deepEqual(kept.toArray(), [6, 6]);
    kept.dispose();
  });

  it('leaves tensors made outside alone, even when they are returned', () => {
    const outside = torch.ones([2]);
    const same = torch.tidy(() => {
      outside.add(1);
      return outside;
    });
    assert.equal(same, outside);
    assert.equal(outside.isDisposed, false);
    outside.dispose();
  });

  it('keep() exempts a tensor from every enclosing scope', () => {
    let kept: Tensor | undefined;
    torch.tidy(() => {
      torch.tidy(() => {
        kept = torch.keep(torch.full([1], 5));
        torch.ones([1]);
      });
    });
    assert.equal(kept?.isDisposed, false);
    assert.equal(kept?.item(), 5);
    kept?.dispose();
  });

  it('frees everything when fn throws, and the scopes recover', () => {
    const made: Tensor[] = [];
    assert.throws(
      () =>
        torch.tidy(() => {
          made.push(torch.ones([2]));
          torch.tidy(() => {
            made.push(torch.ones([2]));
            throw new Error('boom');
          });
        }),
      /boom/,
    );
    assert.deepEqual(
      made.map((t) => t.isDisposed),
      [true, true],
    );
    // No scope is left open: a tensor made now is not freed by a later scope.
    const after = torch.ones([1]);
    torch.tidy(() => torch.zeros([1]));
    assert.equal(after.isDisposed, false);
    after.dispose();
  });

  it('refuses an async function without running it', () => {
    let ran = false;
    assert.throws(
      () =>
        torch.tidy(async () => {
          ran = true;
          await Promise.resolve();
          return torch.ones([1]);
        }),
      { name: 'TypeError', message: /fn must be synchronous/ },
    );
    assert.equal(ran, false);
  });

  it('refuses a returned promise, frees what was made, and leaves no unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on('unhandledRejection', onUnhandled);
    try {
      let made: Tensor | undefined;
      assert.throws(
        () =>
          torch.tidy(() => {
            made = torch.ones([1]);
            return Promise.reject(new Error('later'));
          }),
        { name: 'TypeError', message: /fn must be synchronous/ },
      );
      assert.equal(made?.isDisposed, true);
      await new Promise((done) => setTimeout(done, 20));
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('frees gradient wrappers read inside, not the gradient itself', () => {
    const w = torch.ones([3]).requiresGrad_();
    torch.tidy(() => w.mul(w).sum().backward());
    const readInside = torch.tidy(() => {
      const g = w.grad as Tensor;
      assert.deepEqual(g.toArray(), [2, 2, 2]);
      return g;
    });
    readInside.dispose();
    const again = w.grad as Tensor;
    assert.deepEqual(again.toArray(), [2, 2, 2]);
    again.dispose();
    w.dispose();
  });

  it('dispose() frees tensors in nested values, leaving class instances to free their own', () => {
    const a = torch.ones([1]);
    const b = torch.ones([1]);
    const owned = { tensor: torch.ones([1]) };
    class Holder {
      readonly tensor = torch.ones([1]);
    }
    const holder = new Holder();
    torch.dispose({ a, rest: [b, 3, 'x', null, new Map([['k', [[[owned]]]]])], holder });
    assert.ok(a.isDisposed && b.isDisposed && owned.tensor.isDisposed);
    assert.equal(holder.tensor.isDisposed, false);
    holder.tensor.dispose();
    a.dispose(); // a second dispose is harmless
  });
});

describe('memory accounting', () => {
  it('counts a broadcast view by its storage, not by the elements it spans', () => {
    // Each view spans 400 MB but holds 4 KB. Counted at full size, every one of
    // them forced a garbage collection (about 3 ms each).
    const base = torch.zeros([1000]);
    const start = performance.now();
    for (let i = 0; i < 1000; i++) torch.tidy(() => base.expand(100_000, 1000));
    const ms = performance.now() - start;
    base.dispose();
    assert.ok(ms < 1000, `1,000 broadcast views took ${ms.toFixed(0)} ms`);
  });
});

// With --expose-gc, in a child: the tensors are never disposed, so only the
// collector's weak callbacks can free them. With a fixed mmap threshold each
// 8 MiB buffer is a mapping of its own, which glibc unmaps when it is freed
// (its default threshold rises after the first such free and keeps later ones
// in the heap), so resident memory shows whether they were.
const COLLECTED = `
import * as torch from '${resolve('src/torch/index.js')}';
const rss = () => process.memoryUsage().rss / 2 ** 20;
torch.ones([1]).dispose();
const before = rss();
const made = [];
for (let i = 0; i < 20; i++) made.push(torch.zeros([1 << 21]).add(1)); // 20 results of 8 MiB
const held = rss();
made.length = 0;
globalThis.gc();
console.log(JSON.stringify({ held: held - before, after: rss() - before }));
`;

describe('garbage collection', () => {
  it('frees an undisposed tensor when the collector takes its object', () => {
    const dir = mkdtempSync(join(tmpdir(), 'moco-cxr-gc-'));
    try {
      const script = join(dir, 'collected.mts');
      writeFileSync(script, COLLECTED);
      const run = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', script], {
        encoding: 'utf8',
        env: { ...process.env, MALLOC_MMAP_THRESHOLD_: String(128 * 1024) },
      });
      assert.equal(run.status, 0, run.stderr);
      const report = JSON.parse(run.stdout.trim().split('\n').pop() ?? '') as { held: number; after: number };
      assert.ok(report.held >= 150, `20 tensors of 8 MiB added only ${report.held.toFixed(1)} MiB`);
      // A value or two may still sit in a register or stack slot the collector scans.
      assert.ok(report.after < 40, `after collection ${report.after.toFixed(1)} MiB more than before`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('makes results that are Tensors without running the constructor, and tidy frees them', () => {
    const a = torch.ones([2]);
    let inside: Tensor | undefined;
    torch.tidy(() => {
      inside = a.add(a);
      assert.ok(inside instanceof torch.Tensor);
      assert.equal(Object.getPrototypeOf(inside), torch.Tensor.prototype);
    });
    assert.equal(inside?.isDisposed, true);
    a.dispose();
  });
});

// Run in a child so that the test runner's own allocations do not blur the RSS.
// The same loop runs twice: yielding to the event loop every 100 steps, as a
// loop fed by a data loader does, and fully synchronous. The tensors' own
// memory is freed at once by tidy in both; the small native record behind each
// tensor object goes with the object at the next collection.
const TRAINING_LOOP = `
import * as torch from '${resolve('src/torch/index.js')}';
const steps = 10000, warmup = 1000, lr = 0.05;
torch.manualSeed(0);
const x = torch.randn([64, 32]);
const truth = torch.randn([32, 1]);
const y = torch.tidy(() => x.matmul(truth).add(torch.randn([64, 1]).mul(0.01)));
const lossOf = (w, b) => torch.tidy(() => x.matmul(w).add(b).sub(y).pow(2).mean().item());
async function train(yieldEvery) {
  const w = torch.zeros([32, 1]).requiresGrad_();
  const b = torch.zeros([1]).requiresGrad_();
  const first = lossOf(w, b);
  let rssWarm = 0, rssMax = 0;
  const start = performance.now();
  for (let step = 1; step <= steps; step++) {
    torch.tidy(() => {
      const loss = x.matmul(w).add(b).sub(y).pow(2).mean();
      loss.backward();
      torch.noGrad(() => {
        for (const p of [w, b]) {
          p.sub_(p.grad.mul(lr));
          p.grad = null;
        }
      });
    });
    if (yieldEvery > 0 && step % yieldEvery === 0) await new Promise((done) => setImmediate(done));
    if (step === warmup) rssWarm = process.memoryUsage().rss;
    if (step > warmup && step % 250 === 0) rssMax = Math.max(rssMax, process.memoryUsage().rss);
  }
  const seconds = (performance.now() - start) / 1000;
  return { first, last: lossOf(w, b), growthMB: (rssMax - rssWarm) / 2 ** 20, seconds };
}
const yielding = await train(100);
const synchronous = await train(0);
console.log(JSON.stringify({ yielding, synchronous }));
`;

interface LoopReport {
  first: number;
  last: number;
  growthMB: number;
  seconds: number;
}

describe('a 10,000-step training loop inside tidy', () => {
  it('holds RSS flat after warm-up and trains', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'moco-cxr-memory-'));
    try {
      const script = join(dir, 'loop.mts');
      writeFileSync(script, TRAINING_LOOP);
      const run = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', timeout: 120_000 });
      assert.equal(run.status, 0, run.stderr);
      const report = JSON.parse(run.stdout.trim().split('\n').pop() ?? '') as Record<string, LoopReport>;
      for (const [name, loop] of Object.entries(report)) {
        t.diagnostic(
          `${name}: 10,000 steps in ${loop.seconds.toFixed(1)} s, RSS +${loop.growthMB.toFixed(1)} MB after ` +
            `warm-up, loss ${loop.first.toFixed(3)} -> ${loop.last.toExponential(2)}`,
        );
        assert.ok(loop.seconds < 30, `${name}: took ${loop.seconds.toFixed(1)} s`);
        assert.ok(loop.last < loop.first * 0.01, `${name}: loss ${loop.first} -> ${loop.last}`);
      }
      const { yielding, synchronous } = report as { yielding: LoopReport; synchronous: LoopReport };
      assert.ok(yielding.growthMB < 16, `yielding loop: RSS grew by ${yielding.growthMB.toFixed(1)} MB`);
      assert.ok(synchronous.growthMB < 50, `synchronous loop: RSS grew by ${synchronous.growthMB.toFixed(1)} MB`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
