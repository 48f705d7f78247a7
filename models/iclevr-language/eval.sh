#!/bin/sh
# Canonical against paraphrased instructions (models/iclevr-language/MODEL_CARD.md): the same val episodes,
# worded by the generator's grammar or by the held-out paraphraser (src/data/iclevrHeldOutPhrasing.ts,
# `--paraphrase 1`), iterative and teacher-forced. Writes runs/eval-lang/<model>-<name>/out.json.
# MODEL=<folder> scores another model the same way (e.g. MODEL=models/iclevr-default, the word-level model).
set -e
cd "$(dirname "$0")/../.."
M=${MODEL:-models/iclevr-language}
E=runs/iclevr-val.jsonl
[ -f $E ] || npx tsx src/data/cli.ts generate --dataset iclevr --count 200 --seed 1 --split val --out $E
tag=$(basename "$M")
run() { name=$1; shift; d=runs/eval-lang/$tag-$name; mkdir -p $d; npx tsx src/eval/cli.ts --model $M --episodes $E --out $d --json "$@" 2>$d/stderr.log | tail -1 > $d/out.json; echo "$tag-$name $(cat $d/out.json)"; }
for S in ${STEPS:-10 50}; do
  run canonical-iter-$S --limit ${LIMIT:-40} --batch 20 --steps $S
  run paraphrased-iter-$S --limit ${LIMIT:-40} --batch 20 --steps $S --paraphrase 1
  [ "$S" = 10 ] || continue
  run canonical-tf-$S --limit ${LIMIT:-40} --batch 20 --steps $S --teacher-forced
  run paraphrased-tf-$S --limit ${LIMIT:-40} --batch 20 --steps $S --teacher-forced --paraphrase 1
done
