/**
 * Grad-CAM (Selvaraju et al.): where in an image the network found the
 * evidence for a task's score. The map of the last convolutional block (ResNet's
 * `layer4`, DenseNet's `features` with its final ReLU: `Backbone.featureMap`)
 * is weighed, channel by channel, by the mean gradient of the task's logit with
 * respect to it, summed over channels and kept where positive.
 *
 * The head sees the map only through the global average pool, so the gradient
 * is taken through the head alone: the map is computed once without autograd,
 * and the pool and classifier run again on a leaf copy of it. For a linear head
 * on pooled features the gradient is the head's weight over h·w at every
 * position, so Grad-CAM is CAM (Zhou et al.): Σ_k w_k A_k / (h·w), kept where positive.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import sharp from 'sharp';

import { type Backbone } from '../models/index.js';
import * as torch from '../torch/index.js';
import { type DecodedImage, type PredictOptions } from './predict.js';

type Tensor = torch.Tensor;

/** What {@link gradCam} gives, on the CPU; the caller disposes both. */
export interface GradCam {
  /** Sigmoid of the logits, `[B, tasks]`. */
  probabilities: Tensor;
  /** The raw maps `[B, tasks, h, w]` at the feature map's resolution (not scaled). */
  maps: Tensor;
}

/**
 * Grad-CAM of every output of `model` (in eval mode) for `images` `[B, C, H, W]`.
 * The classifier's parameters are not left with gradients.
 */
export function gradCam(model: Backbone, images: Tensor): GradCam {
  const head = model.classifier;
  const flags = head.parameters().map((p) => p.requiresGrad);
  head.requiresGrad_(false);
  try {
    return torch.tidy(() => {
      const map = torch.noGrad(() => model.featureMap(images));
      const logitsOf = (leaf: Tensor): Tensor => head.forward(torch.adaptiveAvgPool2d(leaf, 1).flatten(1));
      const probabilities = torch.noGrad(() => logitsOf(map).sigmoid());
      const tasks = probabilities.shape[1] as number;
      const maps: Tensor[] = [];
      for (let t = 0; t < tasks; t++) {
        const leaf = map.detach().requiresGrad_(true);
        logitsOf(leaf).select(1, t).sum().backward();
        const gradient = leaf.grad as Tensor;
        maps.push(torch.noGrad(() => gradient.mean([2, 3], true).mul(map).sum(1).relu()));
      }
      return { probabilities: probabilities.to('cpu').contiguous(), maps: torch.stack(maps, 1).to('cpu').contiguous() };
    });
  } finally {
    head.parameters().forEach((p, i) => p.requiresGrad_(flags[i]));
  }
}

/** Each map `[B, T, h, w]` upsampled to `size`² (bilinear) and scaled to [0, 1] by its own maximum. */
export function scaledMaps(maps: Tensor, size: number): Tensor {
  return torch.tidy(() => {
    const up = torch.interpolate(maps, { size: [size, size], mode: 'bilinear', alignCorners: false }).clamp(0);
    const peak = up.flatten(2).max(2, true).values.unsqueeze(3).clamp(1e-12);
    return up.div(peak).contiguous();
  });
}

/** A blue → cyan → yellow → red colour scale (jet) at `v` in [0, 1]. */
function jet(v: number): [number, number, number] {
  const channel = (centre: number): number => Math.max(0, Math.min(1, 1.5 - Math.abs(4 * v - centre)));
  return [channel(3), channel(2), channel(1)];
}

/** The grey square `pixels` (size², uint8) with `heat` (size², [0, 1]) blended over it in colour, RGB. */
export function camOverlay(pixels: Uint8Array, heat: Float32Array, alpha = 0.45): Uint8Array {
  const rgb = new Uint8Array(pixels.length * 3);
  for (let i = 0; i < pixels.length; i++) {
    const colour = jet(heat[i]!);
    for (let c = 0; c < 3; c++) {
      rgb[i * 3 + c] = Math.round((1 - alpha) * pixels[i]! + alpha * 255 * colour[c]!);
    }
  }
  return rgb;
}

/** A file name for an image id and task: path separators and other odd characters become `_`. */
export function camFileName(id: string, task: string): string {
  const safe = (text: string): string => text.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '');
  return `${safe(id)}.${safe(task)}.png`;
}

/**
 * A `forward` for `predict` that computes Grad-CAM for every task and writes
 * each image's overlays to `dir` (`<id>.<task>.png`, the input at the model's
 * side with the scaled map in colour). Returns the probabilities.
 */
export function camWriter(dir: string, tasks: readonly string[]): NonNullable<PredictOptions['forward']> {
  mkdirSync(dir, { recursive: true });
  return async (classifier, images, batch: DecodedImage[]) => {
    const { probabilities, maps } = gradCam(classifier.model, images);
    const size = images.shape[2] as number;
    try {
      const heat = scaledMaps(maps, size);
      const values = heat.data() as Float32Array;
      heat.dispose();
      const writes: Promise<unknown>[] = [];
      batch.forEach((image, b) => {
        tasks.forEach((task, t) => {
          const at = (b * tasks.length + t) * size * size;
          const rgb = camOverlay(image.pixels, values.subarray(at, at + size * size));
          writes.push(
            sharp(rgb, { raw: { width: size, height: size, channels: 3 } })
              .png()
              .toFile(join(dir, camFileName(image.input.id, task))),
          );
        });
      });
      await Promise.all(writes);
      return probabilities;
    } finally {
      maps.dispose();
    }
  };
}
