/**
 * The Tensor class: a libtorch tensor seen from TypeScript. Each Tensor is the
 * native wrapper object itself (the class extends the addon's TensorHandle), so
 * a tensor costs one JavaScript object. Methods follow PyTorch's names in
 * camelCase; in-place methods end in `_` and return `this`.
 */
import { aten } from './aten.js';
import { checkDevice, type Device } from './device.js';
import {
  DTYPES,
  dtypeCode,
  dtypeName,
  isDType,
  isFloatingPoint,
  viewBytes,
  type AnyTypedArray,
  type DType,
} from './dtype.js';
import { setDisposableCheck, track, trackResult } from './memory.js';
import { native } from './native.js';

/** Memory layouts a 4-d tensor can take. */
export type MemoryFormat = 'contiguous' | 'channelsLast' | 'preserve';

const MEMORY_FORMAT: Record<MemoryFormat, number> = { contiguous: 0, preserve: 1, channelsLast: 2 };

/** @internal */
export function memoryFormatCode(format: MemoryFormat): number {
  const code = MEMORY_FORMAT[format];
  if (code === undefined) throw new TypeError(`unknown memory format '${String(format)}'`);
  return code;
}

const NativeTensor = native.TensorHandle;

export class Tensor extends NativeTensor {
  /**
   * Tensors are made by the torch functions (`torch.zeros`, `torch.tensor`, ...), not with `new`:
   * those are made in C++ and do not run this constructor, which only makes an empty tensor.
   */
  constructor() {
    super();
    track(this);
  }

  // ---- metadata -------------------------------------------------------------

  /** Size of each dimension. */
  get shape(): number[] {
    return this._shape();
  }

  /** Size of one dimension (negative counts from the end), or the whole shape. */
  size(dim: number): number;
  size(): number[];
  size(dim?: number): number | number[] {
    const shape = this._shape();
    if (dim === undefined) return shape;
    const d = dim < 0 ? dim + shape.length : dim;
    const value = shape[d];
    if (value === undefined) throw new RangeError(`size(${dim}): tensor has ${shape.length} dimensions`);
    return value;
  }

  get strides(): number[] {
    return this._strides();
  }

  get dtype(): DType {
    return dtypeName(this._dtype());
  }

  get device(): Device {
    return this._device() as Device;
  }

  /** Number of dimensions. */
  get ndim(): number {
    return this._dim();
  }

  /** Number of elements. */
  numel(): number {
    return this._numel();
  }

  isContiguous(): boolean {
    return this._isContiguous();
  }

  /** Whether the tensor has been freed. */
  get isDisposed(): boolean {
    return this._isDisposed();
  }

  override toString(): string {
    if (this.isDisposed) return 'Tensor(disposed)';
    let shape: number[];
    try {
      shape = this.shape;
    } catch {
      // A wrapper made with `new Tensor()` holds no tensor; describing it must not throw.
      return 'Tensor(empty)';
    }
    return `Tensor(shape=[${shape.join(', ')}], dtype=${this.dtype}, device=${this.device})`;
  }

  // ---- data out -------------------------------------------------------------

  /**
   * A copy of the elements in row-major order. float16 and bfloat16 come out as
   * Float32Array, bool as Uint8Array, int64 as BigInt64Array.
   */
  data(): AnyTypedArray {
    const dtype = this.dtype;
    if (dtype === 'float16' || dtype === 'bfloat16') {
      const wide = this.to('float32');
      try {
        return wide.data();
      } finally {
        wide.dispose();
      }
    }
    return viewBytes(this._bytes(), dtype);
  }

  /** The elements as plain numbers (row-major), whatever the dtype. */
  toArray(): number[] {
    const values = this.data();
    return values instanceof BigInt64Array ? Array.from(values, Number) : Array.from(values);
  }

  /** The value of a one-element tensor. */
  item(): number {
    const value = this._item();
    return typeof value === 'boolean' ? Number(value) : value;
  }

  // ---- autograd -------------------------------------------------------------

  get requiresGrad(): boolean {
    return this._requiresGrad();
  }

  /** Sets whether autograd records operations on this (leaf) tensor. */
  requiresGrad_(flag = true): this {
    this._setRequiresGrad(flag);
    return this;
  }

  /** The accumulated gradient, or null. Each read returns a new wrapper of the same storage. */
  get grad(): Tensor | null {
    const grad = this._grad() as Tensor | null;
    trackResult(grad);
    return grad;
  }

  set grad(value: Tensor | null) {
    this._setGrad(value);
  }

  /** Computes gradients of this tensor with respect to the graph's leaves. */
  backward(gradient?: Tensor, options: { retainGraph?: boolean; createGraph?: boolean } = {}): void {
    this._backward(gradient ?? null, options.retainGraph ?? false, options.createGraph ?? false);
  }

  /** Keeps the gradient of a non-leaf tensor after backward. */
  retainGrad(): this {
    this._retainGrad();
    return this;
  }

  get isLeaf(): boolean {
    return this._isLeaf();
  }

  /** Name of the autograd node that made this tensor, or null for a leaf. */
  get gradFn(): string | null {
    return this._gradFn();
  }

  /** A tensor sharing storage, cut from the graph. */
  detach(): Tensor {
    return aten.detach([this]) as Tensor;
  }

  detach_(): this {
    aten.detach_.inPlace([this]);
    return this;
  }

  /** Points this tensor object at `other`'s tensor, disposing `other`'s wrapper. */
  assign(other: Tensor): this {
    this._assign(other);
    return this;
  }

  // ---- conversion -----------------------------------------------------------

  /** Converts to a dtype or moves to a device (returns a new tensor, or a new wrapper of the same one). */
  to(target: DType | Device, options: { copy?: boolean; memoryFormat?: MemoryFormat } = {}): Tensor {
    if (typeof target !== 'string') {
      throw new TypeError(`to(target): expected a dtype name or a device such as 'cpu', got ${typeof target}`);
    }
    const format = options.memoryFormat === undefined ? undefined : memoryFormatCode(options.memoryFormat);
    if (!isDType(target)) {
      if (target !== 'cpu' && !target.startsWith('cuda')) {
        throw new TypeError(`to('${target}'): expected a dtype (${DTYPES.join(', ')}) or a device ('cpu', 'cuda:N')`);
      }
      const device = checkDevice(target);
      return aten.to([this, undefined, undefined, device, undefined, false, options.copy ?? false, format]) as Tensor;
    }
    const code = dtypeCode(target);
    return aten.to([this, code, undefined, undefined, undefined, false, options.copy ?? false, format]) as Tensor;
  }

  float(): Tensor {
    return this.to('float32');
  }

  double(): Tensor {
    return this.to('float64');
  }

  long(): Tensor {
    return this.to('int64');
  }

  int(): Tensor {
    return this.to('int32');
  }

  bool(): Tensor {
    return this.to('bool');
  }

  half(): Tensor {
    return this.to('float16');
  }

  bfloat16(): Tensor {
    return this.to('bfloat16');
  }

  cpu(): Tensor {
    return this.to('cpu');
  }

  cuda(index = 0): Tensor {
    return this.to(`cuda:${index}`);
  }

  isFloatingPoint(): boolean {
    return isFloatingPoint(this.dtype);
  }

  contiguous(memoryFormat: MemoryFormat = 'contiguous'): Tensor {
    return aten.contiguous([this, memoryFormatCode(memoryFormat)]) as Tensor;
  }

  clone(memoryFormat: MemoryFormat = 'preserve'): Tensor {
    return aten.clone([this, memoryFormatCode(memoryFormat)]) as Tensor;
  }

  // ---- shape ----------------------------------------------------------------

  view(...shape: number[]): Tensor {
    return aten.view([this, shape]) as Tensor;
  }

  reshape(...shape: number[]): Tensor {
    return aten.reshape([this, shape]) as Tensor;
  }

  permute(...dims: number[]): Tensor {
    return aten.permute([this, dims]) as Tensor;
  }

  transpose(dim0: number, dim1: number): Tensor {
    return aten.transpose([this, dim0, dim1]) as Tensor;
  }

  /** Transpose of a 2-d tensor. */
  t(): Tensor {
    return this.transpose(0, 1);
  }

  flatten(startDim = 0, endDim = -1): Tensor {
    return aten.flatten([this, startDim, endDim]) as Tensor;
  }

  squeeze(dim?: number): Tensor {
    return (dim === undefined ? aten.squeeze([this]) : aten.squeezeDim([this, dim])) as Tensor;
  }

  unsqueeze(dim: number): Tensor {
    return aten.unsqueeze([this, dim]) as Tensor;
  }

  /** Broadcasts to a larger shape without copying (-1 keeps a dimension). */
  expand(...shape: number[]): Tensor {
    return aten.expand([this, shape]) as Tensor;
  }

  expandAs(other: Tensor): Tensor {
    return this.expand(...other.shape);
  }

  repeat(...repeats: number[]): Tensor {
    return aten.repeat([this, repeats]) as Tensor;
  }

  // ---- indexing -------------------------------------------------------------

  select(dim: number, index: number): Tensor {
    return aten.select([this, dim, index]) as Tensor;
  }

  narrow(dim: number, start: number, length: number): Tensor {
    return aten.narrow([this, dim, start, length]) as Tensor;
  }

  indexSelect(dim: number, index: Tensor): Tensor {
    return aten.indexSelect([this, dim, index]) as Tensor;
  }

  /** Advanced indexing with one index tensor per leading dimension (null skips one). */
  index(indices: (Tensor | null)[]): Tensor {
    return aten.index([this, indices]) as Tensor;
  }

  gather(dim: number, index: Tensor): Tensor {
    return aten.gather([this, dim, index]) as Tensor;
  }

  scatter(dim: number, index: Tensor, src: Tensor): Tensor {
    return aten.scatter([this, dim, index, src]) as Tensor;
  }

  maskedFill(mask: Tensor, value: number | Tensor): Tensor {
    return (
      typeof value === 'number' ? aten.maskedFill([this, mask, value]) : aten.maskedFillTensor([this, mask, value])
    ) as Tensor;
  }

  maskedFill_(mask: Tensor, value: number): this {
    aten.maskedFill_.inPlace([this, mask, value]);
    return this;
  }

  /** Splits into pieces of `size` along `dim`, or into the given sizes. */
  split(size: number | number[], dim = 0): Tensor[] {
    return (
      typeof size === 'number' ? aten.split([this, size, dim]) : aten.splitWithSizes([this, size, dim])
    ) as Tensor[];
  }

  chunk(chunks: number, dim = 0): Tensor[] {
    return aten.chunk([this, chunks, dim]) as Tensor[];
  }

  flip(...dims: number[]): Tensor {
    return aten.flip([this, dims]) as Tensor;
  }

  // ---- elementwise ----------------------------------------------------------

  add(other: Tensor | number, alpha = 1): Tensor {
    return (
      typeof other === 'number' ? aten.addScalar([this, other, alpha]) : aten.add([this, other, alpha])
    ) as Tensor;
  }

  sub(other: Tensor | number, alpha = 1): Tensor {
    return (
      typeof other === 'number' ? aten.subScalar([this, other, alpha]) : aten.sub([this, other, alpha])
    ) as Tensor;
  }

  /** `other - this` for a number. */
  rsub(other: number): Tensor {
    return aten.rsubScalar([this, other]) as Tensor;
  }

  mul(other: Tensor | number): Tensor {
    return (typeof other === 'number' ? aten.mulScalar([this, other]) : aten.mul([this, other])) as Tensor;
  }

  div(other: Tensor | number): Tensor {
    return (typeof other === 'number' ? aten.divScalar([this, other]) : aten.div([this, other])) as Tensor;
  }

  neg(): Tensor {
    return aten.neg([this]) as Tensor;
  }

  exp(): Tensor {
    return aten.exp([this]) as Tensor;
  }

  log(): Tensor {
    return aten.log([this]) as Tensor;
  }

  log1p(): Tensor {
    return aten.log1p([this]) as Tensor;
  }

  pow(exponent: Tensor | number): Tensor {
    return (
      typeof exponent === 'number' ? aten.powScalar([this, exponent]) : aten.powTensor([this, exponent])
    ) as Tensor;
  }

  sqrt(): Tensor {
    return aten.sqrt([this]) as Tensor;
  }

  rsqrt(): Tensor {
    return aten.rsqrt([this]) as Tensor;
  }

  abs(): Tensor {
    return aten.abs([this]) as Tensor;
  }

  sign(): Tensor {
    return aten.sign([this]) as Tensor;
  }

  floor(): Tensor {
    return aten.floor([this]) as Tensor;
  }

  ceil(): Tensor {
    return aten.ceil([this]) as Tensor;
  }

  round(): Tensor {
    return aten.round([this]) as Tensor;
  }

  reciprocal(): Tensor {
    return aten.reciprocal([this]) as Tensor;
  }

  /** Limits values to [min, max]; either bound may be left out (null). */
  clamp(min: number | null, max?: number | null): Tensor {
    return aten.clamp([this, min, max ?? null]) as Tensor;
  }

  clampMin(min: number): Tensor {
    return this.clamp(min, null);
  }

  sigmoid(): Tensor {
    return aten.sigmoid([this]) as Tensor;
  }

  tanh(): Tensor {
    return aten.tanh([this]) as Tensor;
  }

  relu(): Tensor {
    return aten.relu([this]) as Tensor;
  }

  sin(): Tensor {
    return aten.sin([this]) as Tensor;
  }

  cos(): Tensor {
    return aten.cos([this]) as Tensor;
  }

  maximum(other: Tensor): Tensor {
    return aten.maximum([this, other]) as Tensor;
  }

  minimum(other: Tensor): Tensor {
    return aten.minimum([this, other]) as Tensor;
  }

  eq(other: Tensor | number): Tensor {
    return (typeof other === 'number' ? aten.eqScalar([this, other]) : aten.eq([this, other])) as Tensor;
  }

  ne(other: Tensor | number): Tensor {
    return (typeof other === 'number' ? aten.neScalar([this, other]) : aten.ne([this, other])) as Tensor;
  }

  lt(other: Tensor | number): Tensor {
    return (typeof other === 'number' ? aten.ltScalar([this, other]) : aten.lt([this, other])) as Tensor;
  }

  le(other: Tensor | number): Tensor {
    return (typeof other === 'number' ? aten.leScalar([this, other]) : aten.le([this, other])) as Tensor;
  }

  gt(other: Tensor | number): Tensor {
    return (typeof other === 'number' ? aten.gtScalar([this, other]) : aten.gt([this, other])) as Tensor;
  }

  ge(other: Tensor | number): Tensor {
    return (typeof other === 'number' ? aten.geScalar([this, other]) : aten.ge([this, other])) as Tensor;
  }

  logicalNot(): Tensor {
    return aten.logicalNot([this]) as Tensor;
  }

  logicalAnd(other: Tensor): Tensor {
    return aten.logicalAnd([this, other]) as Tensor;
  }

  logicalOr(other: Tensor): Tensor {
    return aten.logicalOr([this, other]) as Tensor;
  }

  /** Whether `other` has the same shape and elements (as `torch.equal`). */
  equal(other: Tensor): boolean {
    return aten.equal([this, other]) as boolean;
  }

  isnan(): Tensor {
    return aten.isnan([this]) as Tensor;
  }

  isfinite(): Tensor {
    return aten.isfinite([this]) as Tensor;
  }

  // ---- reductions -----------------------------------------------------------

  /** Sum of all elements, or over `dim` (a dimension or a list of them). */
  sum(dim?: number | number[], keepdim = false): Tensor {
    if (dim === undefined) return aten.sumAll([this]) as Tensor;
    return aten.sum([this, typeof dim === 'number' ? [dim] : dim, keepdim]) as Tensor;
  }

  mean(dim?: number | number[], keepdim = false): Tensor {
    if (dim === undefined) return aten.meanAll([this]) as Tensor;
    return aten.mean([this, typeof dim === 'number' ? [dim] : dim, keepdim]) as Tensor;
  }

  /** Largest element, or `{ values, indices }` along a dimension. */
  max(): Tensor;
  max(dim: number, keepdim?: boolean): { values: Tensor; indices: Tensor };
  max(dim?: number, keepdim = false): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return aten.maxAll([this]) as Tensor;
    const [values, indices] = aten.maxDim([this, dim, keepdim]) as [Tensor, Tensor];
    return { values, indices };
  }

  min(): Tensor;
  min(dim: number, keepdim?: boolean): { values: Tensor; indices: Tensor };
  min(dim?: number, keepdim = false): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return aten.minAll([this]) as Tensor;
    const [values, indices] = aten.minDim([this, dim, keepdim]) as [Tensor, Tensor];
    return { values, indices };
  }

  argmax(dim?: number, keepdim = false): Tensor {
    return aten.argmax([this, dim ?? null, keepdim]) as Tensor;
  }

  argmin(dim?: number, keepdim = false): Tensor {
    return aten.argmin([this, dim ?? null, keepdim]) as Tensor;
  }

  /** Standard deviation (unbiased by default, as in PyTorch). */
  std(dim?: number | number[], options: { unbiased?: boolean; keepdim?: boolean } = {}): Tensor {
    const dims = dim === undefined ? null : typeof dim === 'number' ? [dim] : dim;
    return aten.std([this, dims, options.unbiased ?? true, options.keepdim ?? false]) as Tensor;
  }

  var(dim?: number | number[], options: { unbiased?: boolean; keepdim?: boolean } = {}): Tensor {
    const dims = dim === undefined ? null : typeof dim === 'number' ? [dim] : dim;
    return aten.var([this, dims, options.unbiased ?? true, options.keepdim ?? false]) as Tensor;
  }

  /** p-norm over all elements or over `dim`. */
  norm(p = 2, dim?: number | number[], keepdim = false): Tensor {
    if (dim === undefined) return aten.normAll([this, p]) as Tensor;
    return aten.norm([this, p, typeof dim === 'number' ? [dim] : dim, keepdim]) as Tensor;
  }

  all(): Tensor {
    return aten.all([this]) as Tensor;
  }

  any(): Tensor {
    return aten.any([this]) as Tensor;
  }

  sort(dim = -1, descending = false): { values: Tensor; indices: Tensor } {
    const [values, indices] = aten.sort([this, dim, descending]) as [Tensor, Tensor];
    return { values, indices };
  }

  argsort(dim = -1, descending = false): Tensor {
    return aten.argsort([this, dim, descending]) as Tensor;
  }

  topk(k: number, dim = -1, largest = true): { values: Tensor; indices: Tensor } {
    const [values, indices] = aten.topk([this, k, dim, largest, true]) as [Tensor, Tensor];
    return { values, indices };
  }

  cumsum(dim: number): Tensor {
    return aten.cumsum([this, dim]) as Tensor;
  }

  // ---- linear algebra -------------------------------------------------------

  matmul(other: Tensor): Tensor {
    return aten.matmul([this, other]) as Tensor;
  }

  mm(other: Tensor): Tensor {
    return aten.mm([this, other]) as Tensor;
  }

  bmm(other: Tensor): Tensor {
    return aten.bmm([this, other]) as Tensor;
  }

  // ---- in place -------------------------------------------------------------

  add_(other: Tensor | number, alpha = 1): this {
    if (typeof other === 'number') aten.addScalar_.inPlace([this, other, alpha]);
    else aten.add_.inPlace([this, other, alpha]);
    return this;
  }

  sub_(other: Tensor | number, alpha = 1): this {
    if (typeof other === 'number') aten.subScalar_.inPlace([this, other, alpha]);
    else aten.sub_.inPlace([this, other, alpha]);
    return this;
  }

  mul_(other: Tensor | number): this {
    if (typeof other === 'number') aten.mulScalar_.inPlace([this, other]);
    else aten.mul_.inPlace([this, other]);
    return this;
  }

  div_(other: Tensor | number): this {
    if (typeof other === 'number') aten.divScalar_.inPlace([this, other]);
    else aten.div_.inPlace([this, other]);
    return this;
  }

  /** Copies `src`'s values into this tensor (broadcasting, converting dtype). */
  copy_(src: Tensor): this {
    aten.copy_.inPlace([this, src, false]);
    return this;
  }

  zero_(): this {
    aten.zero_.inPlace([this]);
    return this;
  }

  fill_(value: number): this {
    aten.fill_.inPlace([this, value]);
    return this;
  }

  /** `this += weight * (end - this)`: the momentum encoder's update. */
  lerp_(end: Tensor, weight: number | Tensor): this {
    if (typeof weight === 'number') aten.lerpScalar_.inPlace([this, end, weight]);
    else aten.lerpTensor_.inPlace([this, end, weight]);
    return this;
  }

  clamp_(min: number | null, max?: number | null): this {
    aten.clamp_.inPlace([this, min, max ?? null]);
    return this;
  }

  /** `this += value * t1 * t2` */
  addcmul_(t1: Tensor, t2: Tensor, value = 1): this {
    aten.addcmul_.inPlace([this, t1, t2, value]);
    return this;
  }

  /** `this += value * t1 / t2` */
  addcdiv_(t1: Tensor, t2: Tensor, value = 1): this {
    aten.addcdiv_.inPlace([this, t1, t2, value]);
    return this;
  }

  sqrt_(): this {
    aten.sqrt_.inPlace([this]);
    return this;
  }

  relu_(): this {
    aten.relu_.inPlace([this]);
    return this;
  }

  /** Fills with samples of U(from, to) from the global generator. */
  uniform_(from = 0, to = 1): this {
    aten.uniform_.inPlace([this, from, to]);
    return this;
  }

  /** Fills with samples of N(mean, std²) from the global generator. */
  normal_(mean = 0, std = 1): this {
    aten.normal_.inPlace([this, mean, std]);
    return this;
  }

  /** Fills with Bernoulli(p) draws (1 with probability p). */
  bernoulli_(p = 0.5): this {
    aten.bernoulli_.inPlace([this, p]);
    return this;
  }
}

native.setTensorClass(Tensor);
setDisposableCheck((value): value is Tensor => value instanceof Tensor);

/** Whether a value is a Tensor. */
export function isTensor(value: unknown): value is Tensor {
  return value instanceof Tensor;
}
