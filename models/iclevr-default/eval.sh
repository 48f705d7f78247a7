#!/bin/sh
# The evaluations behind MODEL_CARD.md's scores (run from the repository root; ~25 min on the quiet 2-core machine, measured, plus ~11 min for best-of-4).
# Each run writes report.json, contact-sheet.png, out.json (the summary line) and stderr.log to runs/eval/<name>/.
# MODEL=<folder> scores a candidate (e.g. a run's float16 export) with the same protocol before it is shipped.
set -e
cd "$(dirname "$0")/../.."
M=${MODEL:-models/iclevr-default}
E=runs/iclevr-val.jsonl
[ -f $E ] || npx tsx src/data/cli.ts generate --dataset iclevr --count 200 --seed 1 --split val --out $E
run() { name=$1; shift; mkdir -p runs/eval/$name; npx tsx src/eval/cli.ts --model $M --episodes $E --out runs/eval/$name --json "$@" 2>runs/eval/$name/stderr.log | tail -1 > runs/eval/$name/out.json; echo "$name $(cat runs/eval/$name/out.json)"; }
run default-iter --limit 40 --batch 20 --steps 50
run default-iter-reencoded --limit 40 --batch 20 --steps 50 --reencode-reference
run default-tf --limit 40 --batch 20 --steps 50 --teacher-forced
run no-icm-guidance --limit 40 --batch 20 --steps 50 --icm-guidance 0
run no-cfg --limit 40 --batch 20 --steps 50 --guidance 1
run paper-250 --limit 10 --batch 10 --steps 250 --reencode-reference
# Best of 4 (not the paper's; not the default): ~11 min on its own.
run best-of-4 --limit 40 --batch 20 --steps 50 --candidates 4
