/**
 * What the linear probe and fine-tuning share around their training loops:
 * model selection on validation AUC (the top checkpoints, the best so far and
 * early stopping) and the result of a finished cell.
 */
import { type XrayRecord } from '../data/records.js';
import {
  type DownstreamMode,
  type DownstreamResult,
  type EpochSummary,
  type Evaluation,
  type Kept,
  testPredictions,
  TopCheckpoints,
} from './cell.js';

/** Validation evaluations of one training run, and the checkpoints they select. */
export class ModelSelection<T> {
  readonly evaluations: Evaluation[] = [];
  private readonly top: TopCheckpoints<T>;
  private bestAuc = -Infinity;
  private sinceBest = 0;

  /**
   * @param ensemble checkpoints kept
   * @param patience evaluations without a better validation AUC before stopping (undefined: never)
   * @param release frees a checkpoint that leaves the top
   */
  constructor(
    ensemble: number,
    private readonly patience: number | undefined,
    release: (item: T) => void,
  ) {
    this.top = new TopCheckpoints<T>(ensemble, release);
  }

  /** Records an evaluation and offers its checkpoint (`snapshot` runs only if kept); returns whether to stop. */
  evaluate(epoch: number, step: number, valAuc: number, snapshot: () => T): boolean {
    this.evaluations.push({ epoch, step, valAuc });
    this.top.offer(epoch, step, valAuc, snapshot);
    if (valAuc > this.bestAuc) {
      this.bestAuc = valAuc;
      this.sinceBest = 0;
      return false;
    }
    return this.patience !== undefined && ++this.sinceBest >= this.patience;
  }

  /** The best validation AUC so far (-Infinity before the first evaluation). */
  get best(): number {
    return this.bestAuc;
  }

  /** The kept checkpoints, best first. */
  get kept(): readonly Kept<T>[] {
    return this.top.entries;
  }

  /** The kept checkpoints, best first; throws, naming `what` trained, when none has a validation AUC. */
  selected(what: string): readonly Kept<T>[] {
    if (this.top.entries.length === 0) throw new Error(`${what}: no checkpoint has a validation AUC`);
    return this.top.entries;
  }

  /** Frees every kept checkpoint. */
  dispose(): void {
    this.top.dispose();
  }
}

/** What a finished cell knows, from which {@link cellResult} builds its result. */
export interface FinishedCell {
  mode: DownstreamMode;
  init: string;
  task: string;
  fraction: number;
  draw: number;
  /** The training subset. */
  records: readonly XrayRecord[];
  /** The checkpoints the test predictions average, best first (at least one). */
  kept: readonly Kept<unknown>[];
  epochs: EpochSummary[];
  evaluations: Evaluation[];
  /** Every test record; `probabilities` holds one score per record with a known label, in order. */
  testRecords: readonly XrayRecord[];
  probabilities: ArrayLike<number>;
  /** `performance.now()` when the cell started. */
  started: number;
}

/** The result of a finished cell (its test predictions scored). */
export function cellResult(cell: FinishedCell): DownstreamResult {
  const bestCheckpoint = cell.kept[0] as Kept<unknown>;
  const { test, testAuc } = testPredictions(cell.testRecords, cell.task, cell.probabilities);
  return {
    mode: cell.mode,
    init: cell.init,
    task: cell.task,
    fraction: cell.fraction,
    draw: cell.draw,
    trainIds: cell.records.map((record) => record.id),
    valAuc: bestCheckpoint.valAuc,
    bestEpoch: bestCheckpoint.epoch,
    epochs: cell.epochs.length,
    ensembleEpochs: cell.kept.map((entry) => entry.epoch),
    test,
    testAuc,
    seconds: (performance.now() - cell.started) / 1000,
    history: { epochs: cell.epochs, evaluations: cell.evaluations },
  };
}
