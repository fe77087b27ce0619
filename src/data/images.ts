/**
 * Images as a network sees them for evaluation: the deterministic view of
 * cached images (centred crop, grey replicated to 3 channels, normalized), and
 * a no-grad pass of a function over every image of a set in record order.
 */
import { Augmentation, type NormalizationName } from './augment.js';
import { type ImageCache } from './cache.js';
import { BatchLoader } from './loader.js';
import { type XrayRecord } from './records.js';
import * as torch from '../torch/index.js';
import { abortError } from '../util/abort.js';
import { Progress } from '../util/progress.js';

type Tensor = torch.Tensor;

/** Records and the cache that holds their pixels. */
export interface ImageSet {
  records: readonly XrayRecord[];
  cache: ImageCache;
}

/** How images are shown to a network for evaluation. */
export interface EvalViewOptions {
  /** Side of the centred crop taken from the cached squares. */
  imageSize: number;
  /**
   * Normalization (default 'imagenet': MoCo-CXR's supervised code normalizes
   * the grey image, replicated to RGB, with ImageNet's statistics).
   */
  normalize?: NormalizationName;
  /** Images per forward pass (default 64). */
  batchSize?: number;
  device?: string;
  signal?: AbortSignal;
  /** Label of the progress line; none when undefined. */
  progress?: string;
  plainProgress?: boolean;
}

/** The deterministic evaluation view: centred crop of `imageSize`, grey replicated to 3 channels, normalized. */
export function evaluationView(imageSize: number, normalize: NormalizationName = 'imagenet'): Augmentation {
  return new Augmentation({ crop: imageSize, normalize, channels: 3 });
}

/**
 * Runs `fn` on the evaluation view of the split's images, in record order,
 * and returns its outputs concatenated along the first axis, on the CPU.
 * Called under no-grad; `fn`'s input lives on `device`.
 */
export async function mapImages(
  split: ImageSet,
  fn: (images: Tensor) => Tensor,
  options: EvalViewOptions,
): Promise<Tensor> {
  const view = evaluationView(options.imageSize, options.normalize);
  const device = torch.checkDevice(options.device ?? 'cpu');
  const loader = new BatchLoader(split.cache, {
    batchSize: options.batchSize ?? 64,
    shuffle: false,
    records: split.records,
    augment: { apply: (images) => view.evaluate(images) },
  });
  if (loader.missing.length > 0) {
    throw new Error(`${loader.missing.length} records have no cached image, e.g. '${loader.missing[0]}'`);
  }
  const progress =
    options.progress === undefined
      ? undefined
      : new Progress(options.progress, loader.batchesPerEpoch, { plain: options.plainProgress });
  const outputs: Tensor[] = [];
  try {
    for await (const batch of loader.epoch(0)) {
      try {
        outputs.push(torch.noGrad(() => torch.tidy(() => fn(batch.images.to(device)).to('cpu').contiguous())));
      } finally {
        batch.dispose();
      }
      progress?.update(batch.index + 1);
      if (options.signal?.aborted === true) throw abortError();
    }
    if (outputs.length === 0) throw new Error('no images to run');
    return torch.cat(outputs, 0);
  } finally {
    torch.dispose(outputs);
    progress?.finish();
  }
}
