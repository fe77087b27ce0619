/**
 * `moco-cxr demo`: trains a small convolutional network on generated images
 * (bright bars, horizontal or vertical) and prints the loss as it falls — a
 * check that the engine, autograd and an optimizer step work end to end.
 */
import { parseArgs } from 'node:util';

import * as torch from '../torch/index.js';
import type { Command } from './main.js';

/** A batch of 1×size×size images: label 1 has a vertical bar, label 0 a horizontal one. */
function barImages(batch: number, size: number): { images: torch.Tensor; labels: torch.Tensor } {
  return torch.tidy(() => {
    const labels = torch.randint(0, 2, [batch]);
    const position = torch.randint(2, size - 2, [batch, 1, 1, 1]).float();
    const coords = torch.arange(size).float();
    const rows = coords.view(1, 1, size, 1).expand(batch, 1, size, size);
    const cols = coords.view(1, 1, 1, size).expand(batch, 1, size, size);
    const vertical = labels.view(batch, 1, 1, 1).bool().expand(batch, 1, size, size);
    const distance = torch.where(vertical, cols, rows).sub(position).abs();
    const bar = distance.lt(1.5).float();
    const images = bar.add(torch.randn([batch, 1, size, size]).mul(0.3));
    return { images, labels: labels.float() };
  });
}

export const command: Command = {
  summary: 'train a small network on generated images and show the loss falling',
  run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        steps: { type: 'string', default: '150' },
        seed: { type: 'string', default: '0' },
        quick: { type: 'boolean' },
        help: { type: 'boolean' },
      },
    });
    if (values.help === true) {
      console.log('usage: moco-cxr demo [--steps N] [--seed S] [--quick]');
      return Promise.resolve(0);
    }
    const steps = values.quick === true ? 100 : Number(values.steps);
    if (!Number.isInteger(steps) || steps < 1)
      throw new Error(`--steps must be a positive integer, got '${values.steps}'`);
    torch.manualSeed(Number(values.seed));
    const size = 16;
    const params = torch.tidy(() => ({
      conv1: torch.randn([8, 1, 3, 3]).mul(0.3),
      conv2: torch.randn([16, 8, 3, 3]).mul(0.1),
      fc: torch.randn([1, 16]).mul(0.1),
      bias: torch.zeros([1]),
    }));
    const list = Object.values(params);
    for (const p of list) p.requiresGrad_(true);
    const lr = 0.5;
    let first = NaN;
    let last = NaN;
    const started = Date.now();
    for (let step = 1; step <= steps; step++) {
      const loss = torch.tidy(() => {
        const { images, labels } = barImages(32, size);
        let x = torch.conv2d(images, params.conv1, null, { padding: 1 }).relu();
        x = torch.maxPool2d(x, 2);
        x = torch.conv2d(x, params.conv2, null, { padding: 1 }).relu();
        x = torch.adaptiveAvgPool2d(x, 1).flatten(1);
        const logits = torch.linear(x, params.fc, params.bias).view(-1);
        const l = torch.binaryCrossEntropyWithLogits(logits, labels);
        l.backward();
        torch.noGrad(() => {
          for (const p of list) {
            const g = p.grad;
            if (g !== null) p.sub_(g, lr);
            p.grad = null;
          }
        });
        return l.item();
      });
      if (step === 1) first = loss;
      last = loss;
      if (step === 1 || step % 10 === 0 || step === steps) {
        console.log(`step ${String(step).padStart(4)}  loss ${loss.toFixed(4)}`);
      }
    }
    torch.dispose(list);
    const seconds = (Date.now() - started) / 1000;
    console.log(`loss ${first.toFixed(4)} -> ${last.toFixed(4)} in ${steps} steps (${seconds.toFixed(1)} s)`);
    return Promise.resolve(last < first ? 0 : 1);
  },
};
