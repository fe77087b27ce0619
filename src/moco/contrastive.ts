/**
 * The pieces of Momentum Contrast that are plain tensor math: the InfoNCE
 * logits with the positive key at index 0, the key queue (a ring buffer of
 * L2-normalized keys), and the momentum update of the key encoder.
 */
import * as foreach from '../torch/foreach.js';
import * as torch from '../torch/index.js';

/**
 * Logits `[N, 1 + K]`: column 0 holds q·k⁺ (each query with its own key), the
 * rest q·queue (each query against every queued negative), all divided by the
 * temperature. The target class is therefore always 0.
 */
export function contrastiveLogits(
  q: torch.Tensor,
  k: torch.Tensor,
  queue: torch.Tensor,
  temperature: number,
): torch.Tensor {
  return torch.tidy(() => {
    const positive = torch.einsum('nc,nc->n', q, k).unsqueeze(-1);
    const negative = torch.einsum('nc,ck->nk', q, queue);
    return torch.cat([positive, negative], 1).div(temperature);
  });
}

/** InfoNCE loss and the fraction of queries whose positive scored highest. */
export function infoNce(logits: torch.Tensor): { loss: torch.Tensor; top1: number } {
  return torch.tidy(() => {
    const target = torch.zeros([logits.size(0)], { dtype: 'int64', device: logits.device });
    const loss = torch.crossEntropy(logits, target);
    const top1 = torch.noGrad(() => logits.argmax(1).eq(0).float().mean().item());
    return { loss, top1 };
  });
}

/**
 * Writes `keys` `[batch, dim]` over the oldest `batch` columns of the queue
 * `[dim, size]` and advances the int64 `pointer`. The queue size must be a
 * multiple of the batch size so that a batch never straddles the end of the ring.
 */
export function enqueueKeys(queue: torch.Tensor, pointer: torch.Tensor, keys: torch.Tensor): void {
  const batch = keys.size(0);
  const size = queue.size(1);
  if (size % batch !== 0) {
    throw new RangeError(
      `queue size ${size} is not a multiple of the batch size ${batch}: choose a queue size divisible by the ` +
        'batch size, and drop the last incomplete batch of an epoch',
    );
  }
  const at = pointer.item();
  torch.noGrad(() =>
    torch.tidy(() => {
      queue.narrow(1, at, batch).copy_(keys.t());
    }),
  );
  pointer.fill_((at + batch) % size);
}

/**
 * `key = m·key + (1 − m)·query` for each pair of parameters, in two list
 * kernels for the whole encoder rather than two calls per parameter.
 */
export function momentumUpdate(keyParams: torch.Tensor[], queryParams: torch.Tensor[], momentum: number): void {
  if (keyParams.length !== queryParams.length) {
    throw new RangeError(`momentumUpdate: ${keyParams.length} key parameters but ${queryParams.length} query ones`);
  }
  torch.noGrad(() => {
    foreach.mulScalar_(keyParams, momentum);
    foreach.addList_(keyParams, queryParams, 1 - momentum);
  });
}
