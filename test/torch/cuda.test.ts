import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as torch from '../../src/torch/index.js';

const info = torch.buildInfo();
const noCuda = info.cudaAvailable
  ? undefined
  : `no CUDA here: libtorch ${info.version} ${info.cudaCompiled ? 'sees no GPU' : 'was built without CUDA'}`;

describe('CUDA', () => {
  test(
    'asking for CUDA without it is a clear error',
    { skip: info.cudaAvailable ? 'CUDA is available' : undefined },
    () => {
      const t = torch.ones([2]);
      assert.throws(() => t.to('cuda'), /built without CUDA|CUDA device\(s\) are visible/);
      assert.throws(() => torch.zeros([2], { device: 'cuda:0' }), /CUDA/);
      t.dispose();
    },
  );

  test('tensors move to the GPU and back with the same values', { skip: noCuda }, () => {
    torch.tidy(() => {
      const x = torch.randn([3, 4]);
      const onGpu = x.to('cuda');
      assert.equal(onGpu.device, 'cuda:0');
      assert.deepEqual(onGpu.to('cpu').toArray(), x.toArray());
    });
  });

  test('a convolution and its gradient agree with the CPU', { skip: noCuda }, () => {
    torch.tidy(() => {
      torch.manualSeed(0);
      const x = torch.randn([2, 3, 16, 16]);
      const w = torch.randn([4, 3, 3, 3]).requiresGrad_();
      const out = torch.conv2d(x, w, null, { padding: 1 });
      out.sum().backward();
      const wc = w.detach().to('cuda').requiresGrad_();
      const outc = torch.conv2d(x.to('cuda'), wc, null, { padding: 1 });
      outc.sum().backward();
      assert.ok(out.sub(outc.to('cpu')).abs().max().item() < 1e-4);
      assert.ok(w.grad!.sub(wc.grad!.to('cpu')).abs().max().item() < 1e-3);
    });
  });

  test('an out-of-range device index is a clear error', { skip: noCuda }, () => {
    assert.throws(() => torch.ones([1]).to(`cuda:${info.cudaDeviceCount}`), /CUDA device\(s\) are visible/);
  });
});
