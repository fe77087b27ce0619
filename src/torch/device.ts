/** Where a tensor lives: `'cpu'`, `'cuda'` or `'cuda:N'`. */
import { native } from './native.js';

export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

/** Whether this libtorch was built with CUDA and sees a GPU. */
export function cudaAvailable(): boolean {
  return native.buildInfo().cudaAvailable;
}

/** Number of CUDA devices visible (0 without a CUDA libtorch). */
export function cudaDeviceCount(): number {
  return native.buildInfo().cudaDeviceCount;
}

/**
 * Checks a device name and, for CUDA, that a GPU is there, so that the user gets
 * a clear message instead of libtorch's missing-backend error.
 */
export function checkDevice(device: string): Device {
  if (device === 'cpu') return device;
  const match = /^cuda(?::(\d+))?$/.exec(device);
  if (match === null) {
    throw new TypeError(`invalid device '${device}': expected 'cpu', 'cuda' or 'cuda:N'`);
  }
  const info = native.buildInfo();
  if (!info.cudaCompiled) {
    throw new Error(
      `device '${device}' requested, but this libtorch (${info.version}) was built without CUDA. ` +
        'Rebuild the addon against a CUDA libtorch with LIBTORCH=/path/to/libtorch npm run setup.',
    );
  }
  const index = match[1] === undefined ? 0 : Number(match[1]);
  if (index >= info.cudaDeviceCount) {
    throw new Error(`device '${device}' requested, but only ${info.cudaDeviceCount} CUDA device(s) are visible`);
  }
  return device as Device;
}
