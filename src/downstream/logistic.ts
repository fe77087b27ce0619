/**
 * The converged linear probe: L2-regularized logistic regression on
 * standardized frozen features, minimized to convergence by L-BFGS over the
 * full batch, with the L2 strength chosen on the validation set from a log
 * grid.
 *
 * Why: MoCo-CXR's probe (Adam, lr 1e-4, batch 16, a fixed number of epochs)
 * stops wherever its epoch budget ends, so a probe comparison also compares
 * how far two optimizations got. The features of a cell fit in memory, and
 * the objective is strictly convex for any L2 strength above zero, so its
 * minimum is one well-defined point that a quasi-Newton method reaches in a
 * few hundred full passes. Everything runs in float64 on plain arrays: a pass
 * is one matrix-vector product each way (N·D multiply-adds), and float64
 * makes "converged" a question of the stopping rule, not of rounding.
 */

/** A binary problem in float64: `x` is `[n, d]` row-major; rows with `weight` 0 are left out. */
export interface LogisticProblem {
  x: Float64Array;
  /** 0 or 1 per row. */
  y: Float64Array;
  /** 1 where the label is known, 0 where it is masked out. */
  weight: Float64Array;
  n: number;
  d: number;
}

/** Options of {@link minimizeLbfgs}. */
export interface LbfgsOptions {
  /** Stop when the largest gradient component is at most this (default 1e-8). */
  gradTol?: number;
  /** Iterations at most (default 1000). */
  maxIterations?: number;
  /** Correction pairs kept (default 10). */
  memory?: number;
}

/** Where {@link minimizeLbfgs} stopped. */
export interface LbfgsResult {
  x: Float64Array;
  value: number;
  /** The largest gradient component at `x`. */
  gradMax: number;
  iterations: number;
  /** Objective and gradient evaluations. */
  evaluations: number;
  /** Whether `gradMax <= gradTol` (else the iteration limit, a failed line search or a stall stopped it). */
  converged: boolean;
  /**
   * Whether it stopped because the objective no longer fell by more than
   * float64 rounding: the gradient left is then below what the function
   * values can resolve, and further iterations only wander.
   */
  stalled: boolean;
}

/** The objective and its gradient: returns f(x) and writes ∇f(x) into `grad`. */
export type ObjectiveWithGradient = (x: Float64Array, grad: Float64Array) => number;

function dot(a: Float64Array, b: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] as number) * (b[i] as number);
  return sum;
}

function maxAbs(a: Float64Array): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] as number));
  return max;
}

/**
 * Iterations in a row whose decrease of the objective is within rounding
 * ({@link FLAT_DECREASE} relative) after which the minimizer stops.
 */
const FLAT_ITERATIONS = 5;

/**
 * A relative decrease this small is float64 rounding, not progress: a sum of
 * n terms carries a relative error of order n·ε (ε = 2.2e-16), so below a few
 * ulps the Armijo test accepts or refuses steps by the rounding of the sums.
 */
const FLAT_DECREASE = 8 * Number.EPSILON;

/**
 * Minimizes a smooth function by limited-memory BFGS (the two-loop recursion,
 * Nocedal & Wright, Algorithm 7.4) with a backtracking line search on the
 * Armijo condition. A correction pair is kept only when its curvature sᵀy is
 * positive, so the implicit inverse Hessian stays positive definite even
 * where backtracking accepted a step that a Wolfe search would not have.
 * It stops at the gradient tolerance, at the iteration limit, when no step
 * decreases the objective, or when {@link FLAT_ITERATIONS} iterations in a row
 * decrease it only by rounding (`stalled`): near the optimum of a sum over
 * many rows the gradient can be larger than `gradTol` while the objective is
 * already flat to the last bits, and without this rule the remaining
 * iterations all run to the limit.
 */
export function minimizeLbfgs(f: ObjectiveWithGradient, x0: Float64Array, options: LbfgsOptions = {}): LbfgsResult {
  const gradTol = options.gradTol ?? 1e-8;
  const maxIterations = options.maxIterations ?? 1000;
  const memory = options.memory ?? 10;
  const size = x0.length;
  let x = Float64Array.from(x0);
  let grad = new Float64Array(size);
  let value = f(x, grad);
  let evaluations = 1;
  if (!Number.isFinite(value)) throw new RangeError(`L-BFGS: the objective is ${value} at the start`);
  const sList: Float64Array[] = [];
  const yList: Float64Array[] = [];
  const rhoList: number[] = [];
  const alpha = new Float64Array(memory);
  const direction = new Float64Array(size);
  let nextX = new Float64Array(size);
  let nextGrad = new Float64Array(size);
  let iterations = 0;
  let flat = 0;
  while (maxAbs(grad) > gradTol && iterations < maxIterations && flat < FLAT_ITERATIONS) {
    // Two-loop recursion: direction = −H·grad.
    for (let i = 0; i < size; i++) direction[i] = -(grad[i] as number);
    for (let k = sList.length - 1; k >= 0; k--) {
      const a = (rhoList[k] as number) * dot(sList[k] as Float64Array, direction);
      alpha[k] = a;
      const y = yList[k] as Float64Array;
      for (let i = 0; i < size; i++) direction[i] = (direction[i] as number) - a * (y[i] as number);
    }
    if (sList.length > 0) {
      const s = sList[sList.length - 1] as Float64Array;
      const y = yList[yList.length - 1] as Float64Array;
      const gamma = dot(s, y) / dot(y, y);
      for (let i = 0; i < size; i++) direction[i] = (direction[i] as number) * gamma;
    }
    for (let k = 0; k < sList.length; k++) {
      const beta = (rhoList[k] as number) * dot(yList[k] as Float64Array, direction);
      const s = sList[k] as Float64Array;
      const a = alpha[k] as number;
      for (let i = 0; i < size; i++) direction[i] = (direction[i] as number) + (a - beta) * (s[i] as number);
    }
    let slope = dot(grad, direction);
    if (!(slope < 0)) {
      // Not a descent direction (lost curvature information): restart from steepest descent.
      sList.length = 0;
      yList.length = 0;
      rhoList.length = 0;
      for (let i = 0; i < size; i++) direction[i] = -(grad[i] as number);
      slope = dot(grad, direction);
    }
    // The first step has no curvature to scale it: a unit step would be as long as the gradient.
    let step = sList.length === 0 ? Math.min(1, 1 / Math.sqrt(-slope)) : 1;
    let nextValue = NaN;
    let accepted = false;
    for (let tries = 0; tries < 60; tries++) {
      for (let i = 0; i < size; i++) nextX[i] = (x[i] as number) + step * (direction[i] as number);
      nextValue = f(nextX, nextGrad);
      evaluations++;
      if (Number.isFinite(nextValue) && nextValue <= value + 1e-4 * step * slope) {
        accepted = true;
        break;
      }
      step *= 0.5;
    }
    iterations++;
    if (!accepted) break;
    const s = new Float64Array(size);
    const y = new Float64Array(size);
    for (let i = 0; i < size; i++) {
      s[i] = (nextX[i] as number) - (x[i] as number);
      y[i] = (nextGrad[i] as number) - (grad[i] as number);
    }
    const curvature = dot(s, y);
    if (curvature > 1e-300) {
      if (sList.length === memory) {
        sList.shift();
        yList.shift();
        rhoList.shift();
      }
      sList.push(s);
      yList.push(y);
      rhoList.push(1 / curvature);
    }
    flat = value - nextValue <= FLAT_DECREASE * Math.max(1, Math.abs(value)) ? flat + 1 : 0;
    [x, nextX] = [nextX, x];
    [grad, nextGrad] = [nextGrad, grad];
    value = nextValue;
  }
  const gradMax = maxAbs(grad);
  const converged = gradMax <= gradTol;
  return { x, value, gradMax, iterations, evaluations, converged, stalled: !converged && flat >= FLAT_ITERATIONS };
}

/** log(1 + eᶻ) without overflow. */
function softplus(z: number): number {
  return z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z));
}

function sigmoid(z: number): number {
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}

/**
 * The objective of L2-regularized logistic regression at `params` = [w (d), b]:
 * the mean binary cross-entropy over the known rows plus (λ/2)·‖w‖² (the bias
 * is not penalized); writes the gradient into `grad` when given.
 */
export function logisticObjective(
  problem: LogisticProblem,
  l2: number,
  params: Float64Array,
  grad?: Float64Array,
): number {
  const { x, y, weight, n, d } = problem;
  let known = 0;
  for (let r = 0; r < n; r++) known += weight[r] as number;
  if (known === 0) throw new RangeError('logistic regression: no row has a known label');
  const bias = params[d] as number;
  if (grad !== undefined) grad.fill(0);
  let loss = 0;
  let biasGrad = 0;
  for (let r = 0; r < n; r++) {
    const m = weight[r] as number;
    if (m === 0) continue;
    const offset = r * d;
    let z = bias;
    for (let j = 0; j < d; j++) z += (x[offset + j] as number) * (params[j] as number);
    const label = y[r] as number;
    loss += m * (softplus(z) - label * z);
    if (grad !== undefined) {
      const residual = (m * (sigmoid(z) - label)) / known;
      biasGrad += residual;
      for (let j = 0; j < d; j++) grad[j] = (grad[j] as number) + residual * (x[offset + j] as number);
    }
  }
  let penalty = 0;
  for (let j = 0; j < d; j++) penalty += (params[j] as number) ** 2;
  if (grad !== undefined) {
    for (let j = 0; j < d; j++) grad[j] = (grad[j] as number) + l2 * (params[j] as number);
    grad[d] = biasGrad;
  }
  return loss / known + 0.5 * l2 * penalty;
}

/** A fitted logistic regression: weights, bias, and how the fit ended. */
export interface LogisticFit extends LbfgsResult {
  l2: number;
  /** `x` split: the weights (d). */
  weights: Float64Array;
  bias: number;
}

/** Fits L2-regularized logistic regression by L-BFGS, from `start` ([w, b]) or zeros. */
export function fitLogistic(
  problem: LogisticProblem,
  l2: number,
  options: LbfgsOptions & { start?: Float64Array } = {},
): LogisticFit {
  if (!(l2 >= 0)) throw new RangeError(`logistic regression: the L2 strength must be non-negative, got ${l2}`);
  if (problem.x.length !== problem.n * problem.d) {
    throw new RangeError(`logistic regression: ${problem.x.length} values for ${problem.n} rows of ${problem.d}`);
  }
  const start = options.start ?? new Float64Array(problem.d + 1);
  const result = minimizeLbfgs((params, grad) => logisticObjective(problem, l2, params, grad), start, options);
  return { ...result, l2, weights: result.x.subarray(0, problem.d), bias: result.x[problem.d] as number };
}

/** Per-column mean and standard deviation (population), a zero deviation taken as 1. */
export interface Standardizer {
  mean: Float64Array;
  std: Float64Array;
}

/** The mean and standard deviation of each column of `x` (`[n, d]`) over the rows with a nonzero weight. */
export function standardizer(x: ArrayLike<number>, n: number, d: number, weight?: ArrayLike<number>): Standardizer {
  const mean = new Float64Array(d);
  const std = new Float64Array(d);
  let count = 0;
  for (let r = 0; r < n; r++) {
    if (weight !== undefined && weight[r] === 0) continue;
    count++;
    for (let j = 0; j < d; j++) mean[j] = (mean[j] as number) + (x[r * d + j] as number);
  }
  if (count === 0) throw new RangeError('standardizer: no rows');
  for (let j = 0; j < d; j++) mean[j] = (mean[j] as number) / count;
  for (let r = 0; r < n; r++) {
    if (weight !== undefined && weight[r] === 0) continue;
    for (let j = 0; j < d; j++) std[j] = (std[j] as number) + ((x[r * d + j] as number) - (mean[j] as number)) ** 2;
  }
  for (let j = 0; j < d; j++) {
    const deviation = Math.sqrt((std[j] as number) / count);
    // A constant column carries nothing; dividing by 1 leaves it constant (0 after centring).
    std[j] = deviation > 1e-12 ? deviation : 1;
  }
  return { mean, std };
}

/** `x` (`[n, d]`) centred and scaled by `s`, in float64. */
export function standardize(x: ArrayLike<number>, n: number, d: number, s: Standardizer): Float64Array {
  const out = new Float64Array(n * d);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < d; j++) {
      out[r * d + j] = ((x[r * d + j] as number) - (s.mean[j] as number)) / (s.std[j] as number);
    }
  }
  return out;
}

/** The fitted logit x·w + b of each row of `x` (`[n, d]`, already standardized). */
export function logisticLogits(
  x: Float64Array,
  n: number,
  d: number,
  weights: Float64Array,
  bias: number,
): Float64Array {
  const out = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let z = bias;
    for (let j = 0; j < d; j++) z += (x[r * d + j] as number) * (weights[j] as number);
    out[r] = z;
  }
  return out;
}

/**
 * The L2 strengths tried by default: 10^-4 to 10^2 in half decades (13). On
 * standardized features the data term's curvature per weight is at most 1/4,
 * so 100 shrinks every weight nearly to zero and 10^-4 leaves a separable
 * subset almost unregularized.
 */
export const DEFAULT_L2_GRID: readonly number[] = Array.from({ length: 13 }, (_, i) => 10 ** (2 - i / 2));

/** One L2 strength of a {@link selectLogistic} path. */
export interface LogisticPathPoint {
  l2: number;
  valAuc: number;
  /** Mean cross-entropy of the training rows at the fit (without the penalty). */
  trainLoss: number;
  iterations: number;
  converged: boolean;
  /** Stopped short of the tolerance because the objective was flat to rounding (see {@link LbfgsResult}). */
  stalled: boolean;
  gradMax: number;
  seconds: number;
}

/** Float32 or float64 rows (`[n, d]` row-major) with 0/1 labels and a known-label mask. */
export interface LogisticData {
  x: ArrayLike<number>;
  n: number;
  d: number;
  labels: ArrayLike<number>;
  /** 1 where the label is known (default: every row). */
  mask?: ArrayLike<number>;
}

/** What {@link selectLogistic} chose, and a scorer that applies its standardization and fit. */
export interface LogisticSelection {
  path: LogisticPathPoint[];
  /** Index into `path` of the chosen strength. */
  chosen: number;
  fit: LogisticFit;
  standardizer: Standardizer;
  /** Logits of raw (unstandardized) rows `[n, d]`. */
  logits(x: ArrayLike<number>, n: number): Float64Array;
}

/**
 * Standardizes the features on the training rows, fits logistic regression to
 * convergence at each L2 strength of `grid` (strongest first, each fit
 * starting from the previous one), and keeps the strength with the best
 * validation AUC; on a tie the stronger one (the first met) stays, as the
 * simpler model.
 */
export function selectLogistic(
  train: LogisticData,
  val: LogisticData,
  options: LbfgsOptions & {
    grid?: readonly number[];
    auc: (scores: Float64Array, labels: ArrayLike<number>) => number;
  },
): LogisticSelection {
  const { n, d } = train;
  if (val.d !== d) throw new RangeError(`logistic probe: ${d} training features but ${val.d} validation features`);
  const grid = options.grid ?? DEFAULT_L2_GRID;
  if (grid.length === 0) throw new RangeError('logistic probe: the L2 grid is empty');
  const mask = Float64Array.from(train.mask ?? new Float64Array(n).fill(1));
  const s = standardizer(train.x, n, d, mask);
  const problem: LogisticProblem = {
    x: standardize(train.x, n, d, s),
    y: Float64Array.from(train.labels),
    weight: mask,
    n,
    d,
  };
  const valX = standardize(val.x, val.n, d, s);
  const path: LogisticPathPoint[] = [];
  let best: LogisticFit | undefined;
  let chosen = -1;
  let start: Float64Array | undefined;
  for (const l2 of grid) {
    const began = performance.now();
    const fit = fitLogistic(problem, l2, { ...options, start });
    start = fit.x;
    const valAuc = options.auc(logisticLogits(valX, val.n, d, fit.weights, fit.bias), val.labels);
    let penalty = 0;
    for (let j = 0; j < d; j++) penalty += (fit.weights[j] as number) ** 2;
    path.push({
      l2,
      valAuc,
      trainLoss: fit.value - 0.5 * l2 * penalty,
      iterations: fit.iterations,
      converged: fit.converged,
      stalled: fit.stalled,
      gradMax: fit.gradMax,
      seconds: (performance.now() - began) / 1000,
    });
    if (
      best === undefined ||
      valAuc > (path[chosen] as LogisticPathPoint).valAuc ||
      Number.isNaN(path[chosen]!.valAuc)
    ) {
      best = fit;
      chosen = path.length - 1;
    }
  }
  const fit = best as LogisticFit;
  return {
    path,
    chosen,
    fit,
    standardizer: s,
    logits: (x, rows) => logisticLogits(standardize(x, rows, d, s), rows, d, fit.weights, fit.bias),
  };
}
