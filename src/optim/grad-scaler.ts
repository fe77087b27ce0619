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

/**
 * A scaler's state under PyTorch's names (`torch.cuda.amp.GradScaler.state_dict()`),
 * so that a checkpoint's `scaler` entry reads the same in both.
 */
export interface GradScalerState {
  scale: number;
  growth_factor: number;
  backoff_factor: number;
  growth_interval: number;
  _growth_tracker: number;
}

export class GradScaler {
  private readonly scale: torch.Tensor;
  private readonly growthTracker: torch.Tensor;
  private growthFactor: number;
  private backoffFactor: number;
  private growthInterval: number;

  constructor(
    device: torch.Device,
    options: {
      initScale?: number;
      growthFactor?: number;
      backoffFactor?: number;
      growthInterval?: number;
    } = {},
  ) {
    this.scale = torch.keep(torch.full([1], options.initScale ?? 65536, { device }));
    this.growthTracker = torch.keep(torch.zeros([1], { dtype: 'int32', device }));
    this.growthFactor = options.growthFactor ?? 2;
    this.backoffFactor = options.backoffFactor ?? 0.5;
    this.growthInterval = options.growthInterval ?? 2000;
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
        this.growthFactor,
        this.backoffFactor,
        this.growthInterval,
      ]);
      return finite;
    });
    return stepped;
  }

  /** The state to checkpoint: the scale, the clean steps counted towards growth, and the settings. */
  stateDict(): GradScalerState {
    return {
      scale: this.scale.item(),
      growth_factor: this.growthFactor,
      backoff_factor: this.backoffFactor,
      growth_interval: this.growthInterval,
      _growth_tracker: this.growthTracker.item(),
    };
  }

  /**
   * Restores a state from `stateDict()` or PyTorch's `GradScaler.state_dict()`;
   * `where` names it in errors (the checkpoint file, say).
   */
  loadStateDict(state: unknown, where = 'GradScaler state'): void {
    if (state === null || typeof state !== 'object' || Array.isArray(state)) {
      throw new TypeError(`${where}: expected a dict with scale and _growth_tracker, got ${String(state)}`);
    }
    const dict = state as Record<string, unknown>;
    const read = (key: keyof GradScalerState, check: (n: number) => boolean, expected: string): number => {
      const value = dict[key];
      if (typeof value !== 'number' || !check(value)) {
        throw new TypeError(`${where}: '${key}' must be ${expected}, got ${JSON.stringify(value)}`);
      }
      return value;
    };
    const positive = (n: number): boolean => Number.isFinite(n) && n > 0;
    const scale = read('scale', positive, 'a positive number');
    const tracker = read('_growth_tracker', (n) => Number.isInteger(n) && n >= 0, 'a non-negative integer');
    this.growthFactor = read('growth_factor', (n) => positive(n) && n > 1, 'a number above 1');
    this.backoffFactor = read('backoff_factor', (n) => n > 0 && n < 1, 'a number in (0, 1)');
    this.growthInterval = read('growth_interval', (n) => Number.isInteger(n) && n >= 1, 'a positive integer');
    this.scale.fill_(scale);
    this.growthTracker.fill_(tracker);
  }

  dispose(): void {
    this.scale.dispose();
    this.growthTracker.dispose();
  }
}
