/**
 * A representation monitor for pretraining: a small labelled set, split by
 * patient into a memory bank and queries; after each epoch the query encoder's
 * pooled features label each query by its nearest bank images (cosine
 * similarity, k neighbours), and the AUC of that vote says whether the
 * representation is learning what matters — without training anything.
 */

import { buildCache, type ImageCache } from '../data/cache.js';
import { sourceCacheFolder } from '../data/cache-folder.js';
import { patientSplit } from '../data/splits.js';
import { openSource } from '../data/sources/index.js';
import { type XrayRecord } from '../data/records.js';
import { auc } from '../eval/auc.js';
import { type Backbone } from '../models/index.js';
import * as torch from '../torch/index.js';
import { mapImages } from '../data/images.js';

export interface MonitorOptions {
  /** The label to monitor (default: the source's own task). */
  task?: string;
  imageSize: number;
  cacheDir: string;
  device: string;
  /** Neighbours that vote (default 20). */
  k?: number;
  seed?: number;
  log?: (line: string) => void;
}

/** kNN AUC of a backbone's features on a labelled set. */
export class KnnMonitor {
  private constructor(
    readonly task: string,
    private readonly bank: XrayRecord[],
    private readonly queries: XrayRecord[],
    private readonly cache: ImageCache,
    private readonly options: MonitorOptions,
  ) {}

  /** Opens the monitor's data (`KIND:PATH`) and caches its images. */
  static async open(spec: string, options: MonitorOptions): Promise<KnnMonitor> {
    const source = await openSource(spec);
    const task = options.task ?? source.defaultTask ?? source.tasks[0];
    if (task === undefined || !source.tasks.includes(task)) {
      throw new Error(`monitor ${spec}: no task '${String(task)}'; its tasks are ${source.tasks.join(', ')}`);
    }
    const labelled = source.records.filter((r) => r.labels[task] === 0 || r.labels[task] === 1);
    const split = patientSplit(labelled, { valFraction: 0.5, seed: options.seed ?? 0, balance: { task } });
    for (const [name, part] of [
      ['bank', split.train],
      ['queries', split.validation],
    ] as const) {
      const positives = part.filter((r) => r.labels[task] === 1).length;
      if (positives === 0 || positives === part.length) {
        throw new Error(`monitor ${spec}: its ${name} half has only one class of '${task}'; use a larger set`);
      }
    }
    const { cache } = await buildCache(labelled, {
      dir: sourceCacheFolder(options.cacheDir, spec, options.imageSize),
      size: options.imageSize,
      log: options.log,
    });
    options.log?.(`monitor: kNN on '${task}', ${split.train.length} bank / ${split.validation.length} query images`);
    return new KnnMonitor(task, split.train, split.validation, cache, options);
  }

  /** The kNN AUC of `backbone`'s pooled features (evaluation mode; the mode is restored). */
  async evaluate(backbone: Backbone): Promise<number> {
    const wasTraining = backbone.training;
    backbone.eval();
    try {
      const view = { imageSize: this.options.imageSize, normalize: 'moco-cxr' as const, device: this.options.device };
      const embed = (images: torch.Tensor): torch.Tensor => torch.normalize(backbone.features(images), { dim: 1 });
      const bank = await mapImages({ records: this.bank, cache: this.cache }, embed, view);
      const queries = await mapImages({ records: this.queries, cache: this.cache }, embed, view);
      const scores = torch.tidy(() => {
        const k = Math.min(this.options.k ?? 20, this.bank.length);
        const labels = torch.tensor(Float32Array.from(this.bank, (r) => r.labels[this.task] as number));
        const { indices } = queries.matmul(bank.t()).topk(k, 1);
        // The share of positive neighbours is the query's score.
        return labels.index([indices.flatten()]).view(-1, k).mean(1).toArray();
      });
      torch.dispose([bank, queries]);
      return auc(
        scores,
        this.queries.map((r) => r.labels[this.task] as number),
      );
    } finally {
      backbone.train(wasTraining);
    }
  }

  async close(): Promise<void> {
    await this.cache.close();
  }
}
