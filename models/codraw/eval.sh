#!/bin/sh
# The evaluations behind MODEL_CARD.md's scores (run from the repository root). Output: runs/eval/codraw-<name>/.
# MODEL=<folder> scores a candidate (e.g. a run's float16 export) with the same protocol before it is shipped.
set -e
cd "$(dirname "$0")/../.."
M=${MODEL:-models/codraw}
E=runs/codraw-val.jsonl
[ -f $E ] || npx tsx src/data/cli.ts generate --dataset codraw --split val --out $E
run() { name=codraw-$1; shift; mkdir -p runs/eval/$name; npx tsx src/eval/cli.ts --model $M --episodes $E --codraw-dir ../shared/datasets/codraw --out runs/eval/$name --json "$@" 2>runs/eval/$name/stderr.log | tail -1 > runs/eval/$name/out.json; echo "$name $(cat runs/eval/$name/out.json)"; }
run default-iter --limit 20 --batch 20 --steps 50
run default-iter-reencoded --limit 20 --batch 20 --steps 50 --reencode-reference
run default-tf --limit 20 --batch 20 --steps 50 --teacher-forced
