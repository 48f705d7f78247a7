#!/bin/sh
# The evaluations behind MODEL_CARD.md's scores (run from the repository root; ~80 min on the quiet 2-core machine:
# each best-of-4 run ~10 min, each plain one ~4 min, paper-250 ~6 min).
# Each run writes report.json, contact-sheet.png, out.json (the summary line) and stderr.log to runs/eval/<name>/.
# MODEL=<folder> scores a candidate (e.g. a run's float16 export) with the same protocol before it is shipped.
# default-* use the checkpoint's recorded sampling settings (phi 5, best of 4); the other rows sample plainly
# (--candidates 1), the ablations against plain-iter.
set -e
cd "$(dirname "$0")/../.."
M=${MODEL:-models/iclevr-default}
E=runs/iclevr-val.jsonl
[ -f $E ] || npx tsx src/data/cli.ts generate --dataset iclevr --count 200 --seed 1 --split val --out $E
run() { name=$1; shift; mkdir -p runs/eval/$name; npx tsx src/eval/cli.ts --model $M --episodes ${EPISODES:-$E} --out runs/eval/$name --json "$@" 2>runs/eval/$name/stderr.log | tail -1 > runs/eval/$name/out.json; echo "$name $(cat runs/eval/$name/out.json)"; }
run default-iter --limit 40 --batch 20 --steps 50
run default-tf --limit 40 --batch 20 --steps 50 --teacher-forced
run plain-iter --limit 40 --batch 20 --steps 50 --candidates 1
run plain-tf --limit 40 --batch 20 --steps 50 --candidates 1 --teacher-forced
run plain-iter-reencoded --limit 40 --batch 20 --steps 50 --candidates 1 --reencode-reference
run no-icm-guidance --limit 40 --batch 20 --steps 50 --candidates 1 --icm-guidance 0
run no-cfg --limit 40 --batch 20 --steps 50 --candidates 1 --guidance 1
run paper-250 --limit 10 --batch 10 --steps 250 --candidates 1 --reencode-reference
# The next 40 val episodes (41-80) at the defaults: how far the first 40's scores carry.
sed -n 41,80p $E > runs/iclevr-val-41-80.jsonl
EPISODES=runs/iclevr-val-41-80.jsonl run default-iter-41-80 --batch 20 --steps 50
