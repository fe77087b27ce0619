/**
 * Dynamic loss scaling for float16 training (as `torch.cuda.amp.GradScaler`):
 * the loss is multiplied by a large factor so that small gradients survive in
 * float16; before the optimizer step the gradients are divided back, and a step
 * whose gradients overflowed is skipped while the factor is halved. The factor
 * doubles again after `growthInterval` clean steps. Uses ATen's own kernels.
 */
import * as torch from '../torch/index.js';

const unscale = torch.operator('aten::_amp_foreach_non_finite_check_and_unscale_');
const updateScale = torch.operator('aten::_amp_update_scale_');

export class GradScaler {
  private readonly scale: torch.Tensor;
  private readonly growthTracker: torch.Tensor;

  constructor(
    device: torch.Device,
    private readonly options: {
      initScale?: number;
      growthFactor?: number;
      backoffFactor?: number;
      growthInterval?: number;
    } = {},
  ) {
    this.scale = torch.keep(torch.full([1], options.initScale ?? 65536, { device }));
    this.growthTracker = torch.keep(torch.zeros([1], { dtype: 'int32', device }));
  }

  /** The current scale factor. */
  get factor(): number {
    return this.scale.item();
  }

  /** `loss × scale`, to call backward on. */
  scaleLoss(loss: torch.Tensor): torch.Tensor {
    return loss.mul(this.scale);
  }

  /** Unscales the gradients of `params`, steps unless they overflowed, and updates the scale. Returns whether it stepped. */
  step(optimizer: { step(): void }, params: readonly torch.Tensor[]): boolean {
    const stepped = torch.tidy(() => {
      const grads = params.map((p) => p.grad).filter((g): g is torch.Tensor => g !== null);
      const foundInf = torch.zeros([1], { device: this.scale.device });
      unscale.inPlace([grads, foundInf, this.scale.reciprocal()]);
      const finite = foundInf.item() === 0;
      if (finite) optimizer.step();
      updateScale.inPlace([
        this.scale,
        this.growthTracker,
        foundInf,
        this.options.growthFactor ?? 2,
        this.options.backoffFactor ?? 0.5,
        this.options.growthInterval ?? 2000,
      ]);
      return finite;
    });
    return stepped;
  }

  dispose(): void {
    this.scale.dispose();
    this.growthTracker.dispose();
  }
}
