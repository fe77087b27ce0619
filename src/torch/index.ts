/**
 * The tensor library: libtorch's tensors, operators and autograd, with explicit
 * lifetimes (`dispose`, `tidy`). Mirrors the `torch` namespace of PyTorch.
 */
export { Tensor, isTensor, type MemoryFormat } from './tensor.js';
export type { DType, AnyTypedArray } from './dtype.js';
export { elementSize, isFloatingPoint } from './dtype.js';
export { type Device, cudaAvailable, cudaDeviceCount, checkDevice } from './device.js';
export * from './creation.js';
export * from './functional.js';
export { tidy, keep, dispose } from './memory.js';
export {
  manualSeed,
  setNumThreads,
  getNumThreads,
  buildInfo,
  noGrad,
  enableGrad,
  isGradEnabled,
  autocast,
} from './runtime.js';
export { operator, type Operator } from './operator.js';
export * from './serialization.js';
