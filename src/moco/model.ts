/**
 * Momentum Contrast (MoCo v2) as MoCo-CXR trains it: a query encoder, a key
 * encoder that follows it as a moving average, an MLP projection head, and a
 * queue of past keys serving as negatives. Parameter names match the original
 * code (`encoder_q.*`, `encoder_k.*`, `queue`, `queue_ptr`), so checkpoints
 * load in its tools.
 */
import { type Backbone, createModel, type GreyMode } from '../models/index.js';
import { Linear, Module, ReLU, Sequential } from '../nn/index.js';
import * as torch from '../torch/index.js';
import { contrastiveLogits, enqueueKeys, infoNce, momentumUpdate } from './contrastive.js';

/** The MoCo model's settings; defaults follow MoCo-CXR's published run. */
export interface MoCoOptions {
  /** Backbone name from the model registry. Default 'resnet18'. */
  arch?: string;
  /** Dimension of the projected keys and queries. Default 128. */
  dim?: number;
  /** Number of queued negative keys; must be a multiple of the batch size. Default 24576. */
  queueSize?: number;
  /** Momentum of the key encoder's moving average. Default 0.999. */
  momentum?: number;
  /** Softmax temperature. Default 0.2. */
  temperature?: number;
  /** Use the MLP head `d → d → dim` (MoCo v2). Default true. */
  mlp?: boolean;
  /**
   * Split-batch BatchNorm: the batch runs through each encoder as this many
   * sub-batches, each normalized on its own, with the keys shuffled across
   * sub-batches first — the one-process stand-in for MoCo's shuffling BN
   * across GPUs. 1 (the default, as in a one-GPU MoCo-CXR run) turns it off.
   * BatchNorm's running statistics follow the first sub-batch only, as a
   * data-parallel run keeps rank 0's.
   */
  shuffleSplits?: number;
  /** Channels of the input images (1 for grey X-rays). Default 3. */
  inputChannels?: number;
  /** How a 1-channel input meets an RGB first convolution. Default 'repeat'. */
  greyMode?: GreyMode;
}

/** The result of one MoCo forward pass. */
export interface MoCoOutput {
  /** `[N, 1 + K]` logits, positive at index 0. */
  logits: torch.Tensor;
  /** InfoNCE loss (cross-entropy with target 0). */
  loss: torch.Tensor;
  /** Fraction of queries whose positive key scored highest. */
  top1: number;
}

function buildEncoder(arch: string, dim: number, mlp: boolean, inputChannels: number, greyMode: GreyMode): Backbone {
  const encoder = createModel(arch, { numClasses: dim });
  if (inputChannels !== 3) encoder.setInputChannels(inputChannels, greyMode);
  if (mlp) {
    // MoCo v2's head: the backbone's classifier becomes Linear(d, d) → ReLU →
    // the original Linear(d, dim), named 0, 1, 2 as in the reference code.
    encoder.classifier = new Sequential(
      new Linear(encoder.featureDim, encoder.featureDim),
      new ReLU(),
      encoder.classifier,
    );
  }
  return encoder;
}

export class MoCo extends Module {
  readonly arch: string;
  readonly dim: number;
  readonly queueSize: number;
  readonly momentum: number;
  readonly temperature: number;
  readonly shuffleSplits: number;
  readonly encoderQ: Backbone;
  readonly encoderK: Backbone;

  constructor(options: MoCoOptions = {}) {
    super();
    this.arch = options.arch ?? 'resnet18';
    this.dim = options.dim ?? 128;
    this.queueSize = options.queueSize ?? 24576;
    this.momentum = options.momentum ?? 0.999;
    this.temperature = options.temperature ?? 0.2;
    this.shuffleSplits = options.shuffleSplits ?? 1;
    if (!(this.momentum >= 0 && this.momentum <= 1))
      throw new RangeError(`momentum must be in [0, 1], got ${this.momentum}`);
    if (!(this.temperature > 0)) throw new RangeError(`temperature must be positive, got ${this.temperature}`);
    if (!Number.isInteger(this.shuffleSplits) || this.shuffleSplits < 1) {
      throw new RangeError(`shuffleSplits must be a positive integer, got ${this.shuffleSplits}`);
    }
    if (!Number.isInteger(this.queueSize) || this.queueSize < 1) {
      throw new RangeError(`queueSize must be a positive integer, got ${this.queueSize}`);
    }
    const mlp = options.mlp ?? true;
    const channels = options.inputChannels ?? 3;
    const greyMode = options.greyMode ?? 'repeat';
    this.encoderQ = this.registerModule('encoder_q', buildEncoder(this.arch, this.dim, mlp, channels, greyMode));
    this.encoderK = this.registerModule('encoder_k', buildEncoder(this.arch, this.dim, mlp, channels, greyMode));
    // The key encoder starts as an exact copy and is never trained by gradients.
    torch.tidy(() => this.encoderK.loadStateDict(this.encoderQ.stateDict()));
    this.encoderK.requiresGrad_(false);
    this.registerBuffer(
      'queue',
      torch.tidy(() => torch.normalize(torch.randn([this.dim, this.queueSize]), { dim: 0 })),
    );
    this.registerBuffer('queue_ptr', torch.zeros([1], { dtype: 'int64' }));
  }

  /** The queue of keys `[dim, queueSize]`. */
  get queue(): torch.Tensor {
    return this.getTensor('queue');
  }

  /** Index of the oldest key in the queue (int64 `[1]`). */
  get queuePointer(): torch.Tensor {
    return this.getTensor('queue_ptr');
  }

  /** Steps the key encoder towards the query encoder. */
  updateKeyEncoder(): void {
    momentumUpdate(this.encoderK.parameters(), this.encoderQ.parameters(), this.momentum);
  }

  /** Runs an encoder on `images` in `splits` sub-batches (each with its own BatchNorm statistics). */
  private encode(encoder: Backbone, images: torch.Tensor, splits: number): torch.Tensor {
    if (splits === 1) return encoder.forward(images);
    const batch = images.size(0);
    if (batch % splits !== 0) {
      throw new RangeError(`batch size ${batch} is not divisible by the ${splits} shuffle-BN splits`);
    }
    return torch.tidy(() => {
      const parts = images.chunk(splits, 0);
      const first = encoder.forward(parts[0]!);
      // Running statistics follow the first sub-batch alone, as the running
      // statistics of a data-parallel run are rank 0's: so this stand-in and
      // `splits` processes compute the same model, buffers included.
      // The later sub-batches update scratch copies; the buffers are swapped,
      // not copied back, since an in-place write would invalidate the saved
      // state of the first sub-batch's backward.
      const buffers = encoder.buffers();
      const real = buffers.map((b) => b.detach());
      for (const b of buffers) b.assign(b.clone());
      const rest = parts.slice(1).map((part) => encoder.forward(part));
      buffers.forEach((b, i) => b.assign(real[i]!));
      return torch.cat([first, ...rest], 0);
    });
  }

  /**
   * One MoCo step's forward: queries from `imagesQ`, keys from `imagesK` (two
   * augmentations of the same images), logits against the queue, and the loss.
   * Also moves the key encoder and enqueues the new keys, as the reference
   * does, so call it once per training step.
   */
  step(imagesQ: torch.Tensor, imagesK: torch.Tensor): MoCoOutput {
    return torch.tidy(() => {
      const q = torch.normalize(this.encode(this.encoderQ, imagesQ, this.shuffleSplits), { dim: 1 });
      const k = torch.noGrad(() => {
        this.updateKeyEncoder();
        if (this.shuffleSplits === 1) return torch.normalize(this.encoderK.forward(imagesK), { dim: 1 });
        // Shuffle so that no sub-batch's statistics give its own positives away.
        const order = torch.randperm(imagesK.size(0), { device: imagesK.device });
        const shuffled = this.encode(this.encoderK, imagesK.indexSelect(0, order), this.shuffleSplits);
        return torch.normalize(shuffled.indexSelect(0, order.argsort()), { dim: 1 });
      });
      // A copy: the queue is overwritten below, but backward still needs the
      // negatives that these logits were computed with.
      const logits = contrastiveLogits(q, k, this.queue.clone(), this.temperature);
      const { loss, top1 } = infoNce(logits);
      enqueueKeys(this.queue, this.queuePointer, k);
      return { logits, loss, top1 };
    });
  }

  /** The query encoder's logits are not a classifier's: use `step`. */
  override forward(): torch.Tensor {
    throw new Error('MoCo.forward is not defined: call step(imagesQ, imagesK)');
  }
}
