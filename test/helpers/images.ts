/** Tiny image files for the source tests: grey PNGs (8- or 16-bit) and JPEGs written with sharp. */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

import sharp from 'sharp';

/** Writes a `width`×`height` grey ramp as PNG (16-bit with `bits: 16`) or JPEG (by the name's ending). */
export async function writeGreyImage(
  path: string,
  { width = 6, height = 5, bits = 8 }: { width?: number; height?: number; bits?: 8 | 16 } = {},
): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  const count = width * height;
  if (bits === 16) {
    const pixels = Uint16Array.from({ length: count }, (_, i) => (i * 4099) % 65536);
    await sharp(pixels, { raw: { width, height, channels: 1 } })
      .toColourspace('grey16')
      .png()
      .toFile(path);
    return;
  }
  const pixels = Uint8Array.from({ length: count }, (_, i) => (i * 37) % 256);
  const image = sharp(pixels, { raw: { width, height, channels: 1 } });
  await (path.toLowerCase().endsWith('.png') ? image.png() : image.jpeg()).toFile(path);
}
