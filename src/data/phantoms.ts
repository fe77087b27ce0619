/**
 * Phantom chest radiographs: synthetic frontal (PA) films drawn with batched
 * tensor operations, fast enough to make thousands a second at 128 px. They
 * are the built-in data of the demo and the tests: each has a thorax, two dark
 * lungs above the diaphragm domes, ribs, clavicles, spine, the heart (bright,
 * on the patient's left, which is the viewer's right), grain and exposure
 * differences, varying in size, position and rotation; and findings a model
 * has to see:
 * - `Pleural Effusion`: fluid at a lung base, a bright band that fills the
 *   costophrenic angle and hides the dome, its surface curving up at the lateral
 *   wall (the meniscus); small to large, right, left or both.
 * - `Cardiomegaly`: a heart wider than half the thorax.
 * Image i of a seed is the same whatever batch it is drawn in. A style
 * ({@link PHANTOM_STYLES}) sets how widely pose, mirroring and exposure vary;
 * a seed's anatomy and findings are the same in every style.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import sharp from 'sharp';

import * as torch from '../torch/index.js';
import { combineSeeds, Prng } from './prng.js';
import { type XrayRecord } from './records.js';
import { type Source, type SourceOptions } from './sources/source.js';

type Tensor = torch.Tensor;

/** The labels phantoms carry. */
export const PHANTOM_TASKS = ['Pleural Effusion', 'Cardiomegaly'] as const;

/** The drawn anatomy and findings of one phantom (lengths in units of half the image). */
export interface PhantomParams {
  /** Patient pose: rotation (radians), scale and shift of the whole chest. */
  angle: number;
  scale: number;
  shiftX: number;
  shiftY: number;
  bodyWidth: number;
  /** Distance of each lung's centre from the midline, and the lungs' half-width. */
  lungOffset: number;
  lungWidth: number;
  lungTop: number;
  /** Lowest point of the lungs: the costophrenic angles. */
  lungBottom: number;
  /** Dome apex heights above the lung bottom, patient's right (viewer's left) and left. */
  domeRight: number;
  domeLeft: number;
  /** Heart width over thorax width (cardiothoracic ratio). */
  cardiothoracicRatio: number;
  heartY: number;
  heartHeight: number;
  ribSpacing: number;
  ribPhase: number;
  ribCurve: number;
  /** Darkness of the aerated lung. */
  lungDepth: number;
  /** Effusion size per side, 0 = none, up to 1 (half the lung height). */
  effusionRight: number;
  effusionLeft: number;
  /** How far the fluid climbs at the lateral wall. */
  meniscus: number;
  /** Exposure: gamma, contrast and offset of the film. */
  gamma: number;
  contrast: number;
  brightness: number;
  /** Standard deviation of the grain. */
  grain: number;
  /** Strength of the lung mottle. */
  mottle: number;
  /** 1 for a film mirrored left-right (the heart on the viewer's left), else 0. */
  mirror: number;
}

/**
 * How widely a phantom set's nuisance variation ranges: patient pose, film
 * mirroring and exposure. The findings and the anatomy are drawn alike in
 * every style; only what a radiologist would ignore changes.
 */
export interface PhantomStyle {
  /** Largest rotation either way, in degrees. */
  angle: number;
  scale: readonly [number, number];
  /** Largest shift either way, across and down (units of half the image). */
  shiftX: number;
  shiftY: number;
  /** Share of films mirrored left-right. */
  mirror: number;
  gamma: readonly [number, number];
  contrast: readonly [number, number];
  /** Largest film offset either way. */
  brightness: number;
  /** Strength of the lung mottle, a random texture unique to each film (default 0.07). */
  mottle?: number;
  grain: readonly [number, number];
}

/**
 * The phantom styles, by the name a `phantom:N,SEED,SIZE,STYLE` source gives:
 * `standard`, the tests' phantoms; `posed`, the demo's, whose pose varies as
 * much as MoCo-CXR's augmentations do (rotation up to 10°, shifts of about a
 * crop's slack, mirrored films), so that instance discrimination learns to
 * ignore it and random features do not; `steady`, the demo's since, posed as
 * `posed` but with what MoCo-CXR's augmentations do not remove held nearly
 * fixed (exposure, grain, scale) and a faint lung mottle, so that what tells one
 * phantom from another is mostly its anatomy and findings (docs/demo-design.md
 * has the measurements); `exposed`, posed with exposure varied widely.
 */
export const PHANTOM_STYLES = {
  standard: {
    angle: 5,
    scale: [0.86, 1.04],
    shiftX: 0.06,
    shiftY: 0.05,
    mirror: 0,
    gamma: [0.8, 1.25],
    contrast: [0.85, 1.15],
    brightness: 0.05,
    grain: [0.01, 0.03],
  },
  posed: {
    angle: 10,
    scale: [0.8, 1.04],
    shiftX: 0.12,
    shiftY: 0.1,
    mirror: 0.5,
    gamma: [0.8, 1.25],
    contrast: [0.85, 1.15],
    brightness: 0.05,
    grain: [0.01, 0.03],
  },
  steady: {
    angle: 10,
    scale: [0.92, 1.0],
    shiftX: 0.12,
    shiftY: 0.1,
    mirror: 0.5,
    gamma: [0.97, 1.03],
    contrast: [0.97, 1.03],
    brightness: 0.01,
    grain: [0.015, 0.02],
    mottle: 0.02,
  },
  exposed: {
    angle: 10,
    scale: [0.8, 1.04],
    shiftX: 0.12,
    shiftY: 0.1,
    mirror: 0.5,
    gamma: [0.6, 1.6],
    contrast: [0.6, 1.3],
    brightness: 0.12,
    grain: [0.01, 0.06],
  },
} as const satisfies Record<string, PhantomStyle>;

/** The name of a phantom style. */
export type PhantomStyleName = keyof typeof PHANTOM_STYLES;

/** Options of the phantom generator. */
export interface PhantomOptions {
  /** Image side in pixels (default 128). */
  size?: number;
  /** Share of images with an effusion (default 0.5). */
  effusionRate?: number;
  /** Share of images with cardiomegaly (default 0.25). */
  cardiomegalyRate?: number;
  /** Nuisance ranges (default `standard`). */
  style?: PhantomStyleName;
}

/** Draws the parameters of phantom `index` of `seed`. */
export function phantomParams(seed: number, index: number, options: PhantomOptions = {}): PhantomParams {
  const rng = new Prng(combineSeeds(seed, index));
  const u = (low: number, high: number): number => low + (high - low) * rng.next();
  const style: PhantomStyle = PHANTOM_STYLES[options.style ?? 'standard'];
  const effusion = rng.next() < (options.effusionRate ?? 0.5);
  const side = rng.next();
  const amount = u(0, 1);
  const enlarged = rng.next() < (options.cardiomegalyRate ?? 0.25);
  const lungTop = u(-0.8, -0.66);
  const params = {
    angle: (u(-style.angle, style.angle) * Math.PI) / 180,
    scale: u(...style.scale),
    shiftX: u(-style.shiftX, style.shiftX),
    shiftY: u(-style.shiftY, style.shiftY),
    bodyWidth: u(0.8, 0.92),
    lungOffset: u(0.33, 0.39),
    lungWidth: u(0.25, 0.31),
    lungTop,
    lungBottom: u(0.48, 0.62),
    domeRight: u(0.24, 0.34),
    domeLeft: u(0.18, 0.28),
    cardiothoracicRatio: enlarged ? u(0.56, 0.66) : u(0.38, 0.47),
    heartY: u(0.12, 0.2),
    heartHeight: u(0.26, 0.32),
    ribSpacing: u(0.15, 0.19),
    ribPhase: u(0, 1),
    ribCurve: u(0.55, 0.85),
    lungDepth: u(0.32, 0.42),
    // Both sides in a tenth of the effusions; an effusion is at least small enough to just blunt the angle.
    effusionRight: effusion && (side < 0.45 || side >= 0.9) ? 0.1 + 0.9 * amount : 0,
    effusionLeft: effusion && side >= 0.45 ? 0.1 + 0.9 * (side >= 0.9 ? u(0, 1) : amount) : 0,
    meniscus: u(0.08, 0.16),
    gamma: u(...style.gamma),
    contrast: u(...style.contrast),
    brightness: u(-style.brightness, style.brightness),
    grain: u(...style.grain),
  };
  // Drawn last, so that every other parameter is the same in every style.
  return { ...params, mottle: style.mottle ?? 0.07, mirror: rng.next() < style.mirror ? 1 : 0 };
}

/** The labels of a phantom: effusion on either side; heart over half the thorax. */
export function phantomLabels(params: PhantomParams): Record<(typeof PHANTOM_TASKS)[number], number> {
  return {
    'Pleural Effusion': params.effusionRight > 0 || params.effusionLeft > 0 ? 1 : 0,
    Cardiomegaly: params.cardiothoracicRatio > 0.5 ? 1 : 0,
  };
}

/** Fills a noise array per image from its own generator, so an image does not depend on its batch. */
function noiseOf(seeds: readonly number[], perImage: number, stream: number): Float32Array {
  const out = new Float32Array(seeds.length * perImage);
  seeds.forEach((seed, b) => {
    const rng = new Prng(combineSeeds(seed, stream));
    // Uniform with standard deviation 1: grain needs no normal tails, and one draw per pixel is cheap.
    for (let i = b * perImage; i < (b + 1) * perImage; i++) out[i] = (rng.next() - 0.5) * 3.4641;
  });
  return out;
}

const soft = (t: Tensor, width: number): Tensor => t.div(width).sigmoid();
const square = (t: Tensor): Tensor => t.mul(t);

/**
 * Renders phantoms from their parameters: float32 `[B, 1, size, size]` in
 * [0, 1]. `noiseSeeds` (one per image) fix the grain and lung texture. The
 * anatomy is smooth, so it is drawn at half the size (at most) and scaled up;
 * only the grain is drawn at full size.
 */
export function renderPhantoms(params: readonly PhantomParams[], noiseSeeds: readonly number[], size = 128): Tensor {
  const batch = params.length;
  if (noiseSeeds.length !== batch) {
    throw new RangeError(`renderPhantoms: ${noiseSeeds.length} noise seeds for ${batch} images`);
  }
  const inner = size > 64 ? Math.ceil(size / 2) : size;
  const grain = noiseOf(noiseSeeds, size * size, 1);
  const texture = noiseOf(noiseSeeds, 16 * 16, 2);
  return torch.tidy(() => {
    const column = (key: keyof PhantomParams): Tensor =>
      torch.tensor(
        Float32Array.from(params, (p) => p[key]),
        [batch, 1, 1, 1],
      );
    const p = Object.fromEntries(
      Object.keys(params[0] ?? {}).map((key) => [key, column(key as keyof PhantomParams)]),
    ) as Record<keyof PhantomParams, Tensor>;
    const axis = torch.linspace(-1 + 1 / inner, 1 - 1 / inner, inner);
    const gx = axis.view(1, 1, 1, inner).sub(p.shiftX);
    const gy = axis.view(1, 1, inner, 1).sub(p.shiftY);
    const cos = p.angle.cos();
    const sin = p.angle.sin();
    // Body coordinates: u across (the viewer's right positive), v down; a = |u| for the mirrored parts.
    const u = gx.mul(cos).add(gy.mul(sin)).div(p.scale);
    const v = gy.mul(cos).sub(gx.mul(sin)).div(p.scale);
    const a = u.abs();
    const viewerLeft = u.lt(0);

    // Thorax: narrower at the shoulders, whose line falls laterally; the neck above.
    const halfWidth = v.add(0.9).clamp(0, 1).mul(0.18).add(0.82).mul(p.bodyWidth);
    const shoulders = square(a.div(p.bodyWidth)).mul(0.3).sub(0.92);
    const thorax = soft(halfWidth.sub(a), 0.03).mul(soft(v.sub(shoulders), 0.03));
    const body = thorax.maximum(soft(a.neg().add(0.22), 0.03));

    // Lungs, both at once in mirrored coordinates; the sides differ in dome height and effusion.
    const lungHeight = p.lungBottom.sub(p.lungTop);
    const depth = v.sub(p.lungTop).div(lungHeight).clamp(0, 1);
    const lateral = a.sub(p.lungOffset);
    // Each lung: a rounded apex widening to the base, bounded below by its dome alone, so that the
    // lateral wall meets the dome in a sharp costophrenic angle at the lung bottom.
    const lungHalf = depth.sqrt().mul(0.85).add(0.15).mul(p.lungWidth);
    const outline = soft(lungHalf.sub(lateral.abs()), 0.025)
      .mul(soft(v.sub(p.lungTop), 0.03))
      .mul(soft(a.sub(0.085), 0.02));
    const domeHeight = torch.where(viewerLeft, p.domeRight, p.domeLeft);
    const domeY = p.lungBottom.sub(domeHeight.mul(square(lateral.div(p.lungWidth)).rsub(1).clampMin(0)));
    // Fluid fills the lung below a surface that climbs towards the lateral wall (the meniscus).
    const effusion = torch.where(viewerLeft, p.effusionRight, p.effusionLeft);
    const surface = p.lungBottom
      .sub(effusion.mul(0.5).add(0.04).mul(lungHeight))
      .sub(p.meniscus.mul(square(lateral.div(p.lungWidth).clamp(0, 1.2))));
    const fluid = soft(v.sub(surface), 0.015).mul(effusion.gt(0));

    const heartHalf = p.cardiothoracicRatio.mul(p.lungOffset.add(p.lungWidth));
    // Two thirds of the heart lie on the patient's left (the viewer's right).
    const heart = soft(
      square(u.sub(heartHalf.mul(0.33)).div(heartHalf))
        .add(square(v.sub(p.heartY).div(p.heartHeight)))
        .rsub(1),
      0.08,
    );
    const aerated = outline
      .mul(soft(domeY.sub(v), 0.015))
      .mul(fluid.rsub(1))
      .mul(heart.rsub(1));

    // Lung markings: vessels fanning out from the hila, and a smooth random mottle.
    const hilum = square(a.sub(0.2))
      .add(square(v.sub(0.05)))
      .mul(-6)
      .exp();
    const mottle = torch.interpolate(torch.tensor(texture, [batch, 1, 16, 16]), {
      size: [inner, inner],
      mode: 'bilinear',
      alignCorners: false,
    });
    const lungDark = p.lungDepth.mul(hilum.mul(-0.35).add(1).add(mottle.mul(p.mottle)));

    // Posterior ribs: arcs leaving the spine and falling laterally, over the thorax above the domes.
    const ribs = v
      .sub(square(a).mul(p.ribCurve))
      .add(a.mul(0.25))
      .div(p.ribSpacing)
      .sub(p.ribPhase)
      .mul(2 * Math.PI)
      .cos()
      .sub(0.5)
      .relu()
      .mul(soft(p.lungBottom.add(0.05).sub(v), 0.04).mul(thorax));
    const clavicles = square(v.sub(p.lungTop.add(0.13).sub(a.mul(0.12))).div(0.035))
      .neg()
      .exp()
      .mul(soft(a.neg().add(0.58), 0.03))
      .mul(soft(a.sub(0.06), 0.02));
    const spine = soft(a.neg().add(0.07), 0.015).mul(body);
    const endplates = v
      .div(0.085)
      .mul(2 * Math.PI)
      .cos()
      .relu()
      .pow(4)
      .mul(spine);
    const trachea = soft(a.neg().add(0.035), 0.01).mul(soft(v.neg().sub(0.15), 0.05));

    // Soft tissue is thickest in the middle of the chest.
    const tissue = body.mul(square(a.div(p.bodyWidth)).mul(-0.12).add(0.66));
    const film = tissue
      .add(0.06)
      .sub(aerated.mul(lungDark))
      .add(ribs.mul(aerated.mul(0.16).add(0.06)))
      .add(clavicles.mul(0.09))
      .add(spine.mul(0.08))
      .sub(endplates.mul(0.05))
      .sub(trachea.mul(0.12))
      .add(heart.mul(body).mul(0.04))
      .add(fluid.mul(outline).mul(0.03))
      .clamp(0, 1)
      .pow(p.gamma)
      .mul(p.contrast)
      .add(p.brightness);
    const scaled =
      inner === size ? film : torch.interpolate(film, { size: [size, size], mode: 'bilinear', alignCorners: false });
    const full = torch.where(p.mirror.gt(0.5), scaled.flip(3), scaled);
    return full.add(torch.tensor(grain, [batch, 1, size, size]).mul(p.grain)).clamp(0, 1);
  });
}

/** A batch of phantoms `start .. start+count-1` of `seed`: images `[count, 1, size, size]`, labels and parameters. */
export function generatePhantoms(
  seed: number,
  start: number,
  count: number,
  options: PhantomOptions = {},
): { images: Tensor; labels: Record<(typeof PHANTOM_TASKS)[number], number>[]; params: PhantomParams[] } {
  const indices = Array.from({ length: count }, (_, i) => start + i);
  const params = indices.map((index) => phantomParams(seed, index, options));
  const noiseSeeds = indices.map((index) => combineSeeds(seed, index, 7));
  return { images: renderPhantoms(params, noiseSeeds, options.size ?? 128), labels: params.map(phantomLabels), params };
}

/** The noise seed of phantom `index`, for re-rendering it with changed parameters. */
export function phantomNoiseSeed(seed: number, index: number): number {
  return combineSeeds(seed, index, 7);
}

/** Parses a phantom source location `N[,seed[,size[,style]]]`. */
export function parsePhantomLocation(location: string): {
  count: number;
  seed: number;
  size: number;
  style: PhantomStyleName;
} {
  const parts = location.split(',').map((part) => part.trim());
  const [count, seed, size] = [parts[0], parts[1] ?? '0', parts[2] ?? '128'].map(Number) as [number, number, number];
  const style = parts[3] ?? 'standard';
  if (!Object.hasOwn(PHANTOM_STYLES, style)) {
    throw new Error(
      `phantom:${location}: unknown style '${style}'; the styles are ${Object.keys(PHANTOM_STYLES).join(', ')}`,
    );
  }
  if (
    parts.length > 4 ||
    !Number.isInteger(count) ||
    count < 1 ||
    !Number.isInteger(seed) ||
    !Number.isInteger(size) ||
    size < 16
  ) {
    throw new Error(
      `phantom:${location}: expected phantom:N[,SEED[,SIZE[,STYLE]]] with N images (a positive integer), an ` +
        'integer seed, a size of at least 16 pixels and a style name, e.g. phantom:500,1',
    );
  }
  return { count, seed, size, style: style as PhantomStyleName };
}

/**
 * Writes phantoms as PNG files in `dir` (`phantom_000000.png`, ...) with a
 * `labels.json`, or reuses them when the folder already holds the same set.
 * Returns the records.
 */
export async function writePhantoms(
  dir: string,
  count: number,
  seed: number,
  options: PhantomOptions = {},
): Promise<XrayRecord[]> {
  const size = options.size ?? 128;
  const manifestPath = join(dir, 'labels.json');
  const key = JSON.stringify({
    count,
    seed,
    size,
    effusionRate: options.effusionRate,
    cardiomegalyRate: options.cardiomegalyRate,
    // A standard set keeps the key it had before styles existed, so its folder is reused.
    ...(options.style !== undefined && options.style !== 'standard' ? { style: options.style } : {}),
  });
  const records = (labels: Record<string, number>[]): XrayRecord[] =>
    labels.map((label, i) => {
      const id = `phantom_${String(i).padStart(6, '0')}`;
      return {
        id,
        path: join(dir, `${id}.png`),
        labels: label,
        patientId: id,
        studyId: id,
        view: 'frontal',
        projection: 'PA',
        width: size,
        height: size,
      };
    });
  if (existsSync(manifestPath)) {
    try {
      const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as {
        key: string;
        labels: Record<string, number>[];
      };
      if (manifest.key === key) return records(manifest.labels);
    } catch {
      // Unreadable: write the set again.
    }
  }
  await mkdir(dir, { recursive: true });
  const labels: Record<string, number>[] = [];
  const chunk = 64;
  for (let start = 0; start < count; start += chunk) {
    const n = Math.min(chunk, count - start);
    const batch = generatePhantoms(seed, start, n, options);
    const bytes = torch.tidy(() => batch.images.mul(255).round().to('uint8').data() as Uint8Array);
    batch.images.dispose();
    labels.push(...batch.labels);
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        sharp(bytes.subarray(i * size * size, (i + 1) * size * size), {
          raw: { width: size, height: size, channels: 1 },
        })
          .png()
          .toFile(join(dir, `phantom_${String(start + i).padStart(6, '0')}.png`)),
      ),
    );
  }
  // The manifest goes last, so that a set cut short is never taken as complete.
  await writeFile(`${manifestPath}.tmp`, JSON.stringify({ key, labels }));
  await rename(`${manifestPath}.tmp`, manifestPath);
  return records(labels);
}

/**
 * The `phantom:N[,SEED[,SIZE[,STYLE]]]` source: N phantom radiographs written once as
 * PNGs under the system's temporary folder (or `imageRoot`), labelled
 * `Pleural Effusion` and `Cardiomegaly`.
 */
export async function openPhantoms(location: string, options: SourceOptions = {}): Promise<Source> {
  const { count, seed, size, style } = parsePhantomLocation(location);
  const folder = `n${count}-seed${seed}-${size}px${style === 'standard' ? '' : `-${style}`}`;
  const dir = join(options.imageRoot ?? join(tmpdir(), 'moco-cxr-phantoms'), folder);
  const records = await writePhantoms(dir, count, seed, { size, style });
  return { kind: 'phantom', location, tasks: [...PHANTOM_TASKS], defaultTask: 'Pleural Effusion', records };
}
