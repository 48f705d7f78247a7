#!/bin/sh
# How models/iclevr-language is made (docs/TRAINING.md "Language"): the i-CLEVR default model (its seventh
# release, models/iclevr-default) converted to a byte-level BPE and fine-tuned on reworded instructions. Every step
# resumes from its checkpoint. Run from the repository root:  nohup sh models/iclevr-language/train.sh > runs/lang.log 2>&1 &
set -e
cd "$(dirname "$0")/../.."
COMMON="--dataset iclevr --train-episodes 6000 --val-episodes 200 --checkpoint-minutes 5 --config small"

# 1. The BPE (learnt from the training texts and 30 000 training-grammar wordings; every weight kept, new tokens
#    start from the word, or the synonym's word, they spell), then stages 2 and 3 with half of the instructions
#    reworded each step, seed 21. It ran as --minutes 62 --split 0,0.85,0.15, was stopped with Ctrl-C at stage-2
#    step 727 (a shared machine, the budget too short) and resumed with the budget below; stopped again with Ctrl-C
#    at stage-2 step 1641 to change the grammar (its stage 3 never ran).
[ -f runs/iclevr-lang/last/config.json ] || npx tsx src/train/cli.ts $COMMON --stage 2,3 --init models/iclevr-default \
  --out runs/iclevr-lang --resume --minutes 87 --split 0,0.885,0.115 --lr 4e-5 --batch 16 --val-every 400 \
  --val-patience 3 --val-batches 24 --seed 21 --p2-gamma 1 --icm-hard-negatives --ema-decay 0.999 \
  --tokenizer bpe --reword-rate 0.5

# 2. From its last weights (the average), with the grammar's requests, wishes and "there should be" carriers,
#    60% reworded, seed 22, a shorter weight average (0.995): stage 2 887 steps, stage 3 1890 steps.
[ -f runs/iclevr-lang2/model/config.json ] || npx tsx src/train/cli.ts $COMMON --stage 2,3 --init runs/iclevr-lang/last \
  --out runs/iclevr-lang2 --resume --minutes 30 --split 0,0.73,0.27 --lr 4e-5 --batch 16 --val-every 300 \
  --val-patience 3 --val-batches 24 --seed 22 --p2-gamma 1 --icm-hard-negatives --ema-decay 0.995 --reword-rate 0.6

# 3. Export (float16) with the default model's sampling settings.
npx tsx src/train/cli.ts --export runs/iclevr-lang2/model --out models/iclevr-language --dtype float16 \
  --default-steps 10 --default-select-at 0.5
