/**
 * One MoCo step across the ranks of a process group, as the original's
 * `MoCo.forward` under DistributedDataParallel:
 *
 * - queries from this rank's images through the query encoder (BatchNorm
 *   statistics of this rank's batch);
 * - shuffle BN (`batch_shuffle_ddp`): the key images of all ranks are
 *   gathered, rank 0 draws a permutation of the global batch and broadcasts it,
 *   each rank encodes its slice of the shuffled batch, and the keys are gathered
 *   again and put back in order (`batch_unshuffle_ddp`), so that no rank's
 *   BatchNorm statistics come from its own positives;
 * - the queue takes the keys of all ranks in rank order (`concat_all_gather`),
 *   so that it is the same on every rank.
 *
 * With the global batch split in rank order, this computes what the
 * one-process split-batch stand-in (`shuffleSplits` = world size) computes on
 * the whole batch: the same permutation (the engine's generator is seeded
 * alike on every rank), the same sub-batches through each encoder, and the
 * same queue. Tensors cannot be tracked by `tidy` across the awaits here, so
 * this function frees what it makes by hand.
 */
import { type ProcessGroup } from '../distributed/index.js';
import * as torch from '../torch/index.js';
import { contrastiveLogits, enqueueKeys, infoNce } from './contrastive.js';
import { type MoCo, type MoCoOutput } from './model.js';

/** Concatenation of every rank's `t` along dim 0, in rank order. */
async function gatherAll(group: ProcessGroup, t: torch.Tensor): Promise<torch.Tensor> {
  const parts = await group.allgather(t);
  try {
    return torch.cat(parts, 0);
  } finally {
    torch.dispose(parts);
  }
}

/** The permutation of the global batch, drawn by rank 0 and broadcast to all. */
async function sharedPermutation(group: ProcessGroup, n: number, device: torch.Device): Promise<torch.Tensor> {
  const perm = torch.randperm(n, { device });
  try {
    await group.broadcast(perm, 0);
  } catch (error) {
    perm.dispose();
    throw error;
  }
  return perm;
}

/**
 * One training step's forward on this rank: its queries and keys, logits
 * against the queue, and its loss (the mean over its own queries; averaging
 * the gradients across ranks makes it the mean over the global batch). Moves
 * the key encoder and enqueues all ranks' keys.
 */
export async function distributedMoCoStep(
  model: MoCo,
  imagesQ: torch.Tensor,
  imagesK: torch.Tensor,
  group: ProcessGroup,
  layout: torch.MemoryFormat = 'contiguous',
): Promise<MoCoOutput> {
  if (model.shuffleSplits !== 1) {
    throw new RangeError('distributed MoCo: the model must not split its batch (shuffleSplits 1); ranks shuffle BN');
  }
  const local = imagesK.size(0);
  const q = torch.tidy(() => torch.normalize(model.encoderQ.forward(imagesQ), { dim: 1 }));
  const made: torch.Tensor[] = [q];
  try {
    torch.noGrad(() => model.updateKeyEncoder());
    const flatK = imagesK.contiguous();
    made.push(flatK);
    const allImages = await gatherAll(group, flatK);
    made.push(allImages);
    const perm = await sharedPermutation(group, local * group.size, imagesK.device);
    made.push(perm);
    const mine = torch.noGrad(() =>
      torch.tidy(() => {
        const slice = allImages.indexSelect(0, perm.narrow(0, group.rank * local, local));
        return torch.normalize(model.encoderK.forward(slice.contiguous(layout)), { dim: 1 });
      }),
    );
    made.push(mine);
    const shuffledKeys = await gatherAll(group, mine);
    made.push(shuffledKeys);
    return torch.tidy(() => {
      const keys = torch.noGrad(() => shuffledKeys.indexSelect(0, perm.argsort()));
      const k = keys.narrow(0, group.rank * local, local);
      // A copy: the queue is overwritten below, but backward still needs these negatives.
      const logits = contrastiveLogits(q, k, model.queue.clone(), model.temperature);
      const { loss, top1 } = infoNce(logits);
      enqueueKeys(model.queue, model.queuePointer, keys);
      return { logits, loss, top1 };
    });
  } finally {
    torch.dispose(made);
  }
}
