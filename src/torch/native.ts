/**
 * Loads the native addon (libtorch bound through N-API) and describes its
 * surface. Everything else in the library reaches libtorch through here.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Methods every native tensor carries; the TypeScript `Tensor` class extends them. */
export interface NativeTensorMethods {
  dispose(): void;
  _isDisposed(): boolean;
  _shape(): number[];
  _strides(): number[];
  _dtype(): number;
  _device(): string;
  _numel(): number;
  _dim(): number;
  _isContiguous(): boolean;
  _bytes(): ArrayBuffer;
  /** Copies element bytes from `offset` of a contiguous CPU tensor into `target`; returns the count. */
  _copyBytesTo(target: Uint8Array, offset: number): number;
  _item(): number | boolean;
  _requiresGrad(): boolean;
  _setRequiresGrad(flag: boolean): void;
  _grad(): unknown;
  _setGrad(grad: unknown): void;
  _backward(gradient: unknown, retainGraph: boolean, createGraph: boolean): void;
  _retainGrad(): void;
  _isLeaf(): boolean;
  _gradFn(): string | null;
  _storageId(): number | null;
  _assign(other: unknown): void;
}

/** What libtorch reports about itself. */
export interface BuildInfo {
  version: string;
  config: string;
  parallel: string;
  cudaCompiled: boolean;
  cudaAvailable: boolean;
  cudaDeviceCount: number;
  cudnnAvailable: boolean;
  mkldnn: boolean;
  mkl: boolean;
  openmp: boolean;
  lapack: boolean;
  threads: number;
  interopThreads: number;
}

export interface ResolvedOperator {
  id: number;
  args: { name: string; optional: boolean; hasDefault: boolean }[];
  returns: number;
  /** Whether invoke() calls it unboxed (its signature is one of the addon's fast paths). */
  unboxed: boolean;
}

export interface NativeAddon {
  TensorHandle: new () => NativeTensorMethods;
  /** Gives tensors made in C++ the class's prototype; its constructor does not run for them. */
  setTensorClass(ctor: new () => NativeTensorMethods): void;
  fromBytes(bytes: ArrayBufferView, dtype: number, shape: number[], strides?: number[], offset?: number): unknown;
  resolve(name: string, overload: string): ResolvedOperator;
  call(id: number, args: unknown[], discard?: boolean): unknown;
  /** `call(id, args)` with the arguments passed directly (the per-operator path). */
  invoke(id: number, ...args: unknown[]): unknown;
  /** `call(id, args, true)` with the arguments passed directly. */
  invokeInPlace(id: number, ...args: unknown[]): void;
  schema(id: number): string;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  manualSeed(seed: number): void;
  setGradEnabled(flag: boolean): boolean;
  isGradEnabled(): boolean;
  buildInfo(): BuildInfo;
  setAutocast(device: 'cpu' | 'cuda', enabled: boolean, dtype: number): [boolean, number];
  affineSampleGrey(
    images: unknown,
    theta: Float32Array,
    outHeight: number,
    outWidth: number,
    scale: Float32Array,
    bias: Float32Array,
    out?: unknown,
  ): unknown;
  storageUseCount(tensor: unknown): number;
}

function packageRoot(): string {
  // Works from src/ (tsx) and from dist/ (compiled): both sit two levels below the root.
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

function loadAddon(): NativeAddon {
  const root = packageRoot();
  const file = join(root, 'build', 'Release', 'moco_torch.node');
  if (!existsSync(file)) {
    throw new Error(`moco-cxr: the native engine is not built (${file} is missing). Run \`npm run setup\` in ${root}.`);
  }
  const require = createRequire(import.meta.url);
  return require(file) as NativeAddon;
}

/** The loaded addon. */
export const native: NativeAddon = loadAddon();
