#!/bin/sh
# Table 2's "w/o ICM" ablation on a smaller run than the shipped model's (run from the repository root; ~1 h on the
# 2-core machine beside other work). Two stage-2 runs with the same budget (800 steps, batch 16), seed, data order,
# autoencoder and hyper-parameters, differing only in the ICM loss:
#   with-icm     starts from the stage-1 model (L_icm over encoders and fusion) and trains L_cdd + 0.1 L_icm;
#   without-icm  skips stage 1 (fresh encoders) and trains L_cdd alone (delta = 0).
# Both are then scored alike on the first 40 i-CLEVR-style val episodes at 50 steps, phi = 3 and psi = 0 (neither
# arm has a stage-3 noisy encoder; the comparison is about the training loss), re-encoding each result as the next
# reference as all evaluations did when this ran.
set -e
cd "$(dirname "$0")/../.."
STEPS="${STEPS:-800}"
COMMON="--dataset iclevr --train-episodes 6000 --val-episodes 200 --checkpoint-minutes 5 --config small --stage 2 \
  --autoencoder runs/ae-iclevr/autoencoder --resume --steps $STEPS --lr 2e-4 --batch 16 --val-every 200 --val-batches 8 --seed 5"
npx tsx src/train/cli.ts $COMMON --init runs/iclevr-s1/model --delta 0.1 --out runs/abl-with-icm
npx tsx src/train/cli.ts $COMMON --delta 0 --out runs/abl-without-icm

E=runs/iclevr-val.jsonl
[ -f $E ] || npx tsx src/data/cli.ts generate --dataset iclevr --count 200 --seed 1 --split val --out $E
for arm in with-icm without-icm; do
  mkdir -p runs/eval/abl-$arm
  npx tsx src/eval/cli.ts --model runs/abl-$arm/model --episodes $E --out runs/eval/abl-$arm --json --limit 40 --batch 20 \
    --steps 50 --guidance 3 --icm-guidance 0 --reencode-reference 2>runs/eval/abl-$arm/stderr.log | tail -1 > runs/eval/abl-$arm/out.json
  echo "abl-$arm $(cat runs/eval/abl-$arm/out.json)"
done
