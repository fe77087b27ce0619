/**
 * Float buffers that a loader writes its batches into again once their
 * batch is done with, instead of asking the allocator for fresh memory each
 * batch: for batches of tens of MB the allocator hands back pages the kernel
 * must fault in and zero again, which costs more than the augmentation pass.
 *
 * A buffer is handed out as a view of its own (the caller's `dispose()` frees
 * the view, never the buffer) and is reused only when no tensor but the pool's
 * own shares its storage: a view still held, or one an autograd graph saved,
 * keeps it from being overwritten.
 */
import * as torch from '../torch/index.js';

type Tensor = torch.Tensor;

/** Reusable float CPU buffers by shape, at most `limit` of them. */
export class BufferPool {
  private readonly buffers: Tensor[] = [];

  constructor(private readonly limit: number) {}

  /** A float tensor of `shape` with unspecified contents: a free pooled buffer's view, or a new tensor. */
  take(shape: readonly number[]): Tensor {
    const free = this.buffers.find((buffer) => torch.storageUseCount(buffer) === 1 && sameShape(buffer.shape, shape));
    if (free !== undefined) return free.view(...shape);
    if (this.buffers.length >= this.limit) return torch.empty([...shape]);
    const made = torch.empty([...shape]);
    this.buffers.push(made);
    return made.view(...shape);
  }

  /** Frees the pool's own references; views handed out stay valid. */
  dispose(): void {
    torch.dispose(this.buffers.splice(0));
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((size, i) => size === b[i]);
}
