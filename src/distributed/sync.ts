/**
 * Keeping replicas equal: parameters and buffers broadcast from rank 0, and
 * gradients reduced across ranks after backward.
 *
 * Gradients travel in flat buckets (one allreduce per ~25 MB, as DDP's default
 * bucket size) rather than one collective per tensor: Gloo's cost per call is
 * fixed, and ResNet18 has 62 gradient tensors. These functions run after the
 * whole backward pass; `GradientSync` (grad-sync.ts) chooses between them and
 * libtorch's Reducer, which reduces the buckets while backward still runs.
 */
import * as torch from '../torch/index.js';
import { type ProcessGroup } from './group.js';

/** DDP's default bucket size. */
export const DEFAULT_BUCKET_BYTES = 25 * 1024 * 1024;

/** Groups tensors (in order) into buckets of one dtype and device of at most `bucketBytes` each (a larger tensor alone). */
export function bucketsOf(tensors: torch.Tensor[], bucketBytes: number): torch.Tensor[][] {
  const buckets: torch.Tensor[][] = [];
  let current: torch.Tensor[] = [];
  let bytes = 0;
  for (const t of tensors) {
    const size = t.numel() * torch.elementSize(t.dtype);
    const head = current[0];
    const fits =
      head === undefined || (head.dtype === t.dtype && head.device === t.device && bytes + size <= bucketBytes);
    if (!fits) {
      buckets.push(current);
      current = [];
      bytes = 0;
    }
    current.push(t);
    bytes += size;
  }
  if (current.length > 0) buckets.push(current);
  return buckets;
}

/** Copies consecutive slices of `flat` back into the tensors it was made from. */
function scatterFlat(flat: torch.Tensor, tensors: torch.Tensor[]): void {
  torch.noGrad(() =>
    torch.tidy(() => {
      let at = 0;
      for (const t of tensors) {
        const n = t.numel();
        t.copy_(flat.narrow(0, at, n).view(...t.shape));
        at += n;
      }
    }),
  );
}

/** Reduces a list of tensors in place through flat buckets (`op` 'avg' or 'sum'). */
export async function allreduceFlat(
  group: ProcessGroup,
  tensors: torch.Tensor[],
  op: 'avg' | 'sum' = 'avg',
  bucketBytes = DEFAULT_BUCKET_BYTES,
): Promise<void> {
  if (group.size === 1 || tensors.length === 0) return;
  for (const bucket of bucketsOf(tensors, bucketBytes)) {
    const flat = torch.tidy(() =>
      torch.cat(
        bucket.map((t) => t.reshape(-1)),
        0,
      ),
    );
    try {
      await group.allreduce(flat, op);
      scatterFlat(flat, bucket);
    } finally {
      flat.dispose();
    }
  }
}

/**
 * Averages the gradients of `parameters` across ranks, as DDP does after
 * backward. A parameter without a gradient on this rank takes part with
 * zeros, so that every rank reduces the same list.
 */
export async function averageGradients(
  group: ProcessGroup,
  parameters: torch.Tensor[],
  bucketBytes = DEFAULT_BUCKET_BYTES,
): Promise<void> {
  await reduceGradients(group, parameters, 'avg', bucketBytes);
}

/**
 * Reduces the gradients of `parameters` across ranks in flat buckets: 'avg'
 * as DDP, or 'sum' where each rank's loss is already divided by a global
 * count (fine-tuning's masked loss over the labelled rows of the global
 * batch). A parameter without a gradient takes part with zeros.
 */
export async function reduceGradients(
  group: ProcessGroup,
  parameters: torch.Tensor[],
  op: 'avg' | 'sum',
  bucketBytes = DEFAULT_BUCKET_BYTES,
): Promise<void> {
  if (group.size === 1) return;
  const trainable = parameters.filter((p) => p.requiresGrad);
  const grads = trainable.map((p) => {
    const g = p.grad;
    if (g !== null) return g;
    const zero = torch.zeros(p.shape, { dtype: p.dtype, device: p.device });
    p.grad = zero;
    zero.dispose();
    return p.grad;
  });
  try {
    await allreduceFlat(group, grads, op, bucketBytes);
  } finally {
    torch.dispose(grads);
  }
}

/**
 * Copies `root`'s tensors (a module's parameters and buffers, or any list) to
 * every rank, as DDP does when it wraps a model: flat buckets, so that any
 * layout (channels-last parameters are not contiguous) travels.
 */
export async function broadcastTensors(group: ProcessGroup, tensors: torch.Tensor[], root = 0): Promise<void> {
  if (group.size === 1 || tensors.length === 0) return;
  for (const bucket of bucketsOf(tensors, DEFAULT_BUCKET_BYTES)) {
    const flat = torch.tidy(() =>
      torch.cat(
        bucket.map((t) => t.reshape(-1)),
        0,
      ),
    );
    try {
      await group.broadcast(flat, root);
      scatterFlat(flat, bucket);
    } finally {
      flat.dispose();
    }
  }
}
