/** `moco-cxr finetune`: end-to-end fine-tuning at every label fraction and draw (options as `linear`). */
import { downstreamCommand } from './linear.js';
import type { Command } from './command.js';

export const command: Command = downstreamCommand('finetune');
