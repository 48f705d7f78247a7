#!/bin/sh
# The evaluations behind MODEL_CARD.md's "Few-step sampling" table (run from the repository root): eval.sh's
# protocol (first 40 val episodes, batch 20, the checkpoint's defaults phi 5, psi 2, best of 4) with --solver and
# --steps; STUDENT=<folder> adds the guidance-distilled student's rows (npm run train -- --stage guidance, see
# docs/TRAINING.md); PD_STUDENT=<folder> the progressive-distillation student's (--stage progressive: 5 steps at its
# defaults, teacher-forced, re-encoded references, and off its grid at 8 and 10 steps). Each run writes runs/eval/<name>/{out.json,report.json,contact-sheet.png,stderr.log}.
set -e
cd "$(dirname "$0")/../.."
M=${MODEL:-models/iclevr-default}
E=runs/iclevr-val.jsonl
[ -f $E ] || npx tsx src/data/cli.ts generate --dataset iclevr --count 200 --seed 1 --split val --out $E
run() { name=$1; model=$2; shift 2; mkdir -p runs/eval/$name; npx tsx src/eval/cli.ts --model $model --episodes ${EPISODES:-$E} --out runs/eval/$name --json "$@" 2>runs/eval/$name/stderr.log | tail -1 > runs/eval/$name/out.json; echo "$name $(cat runs/eval/$name/out.json)"; }
for n in 8 10; do
  run ddim-$n-bo4 $M --limit 40 --batch 20 --steps $n --solver ddim
  run dpm-$n-bo4 $M --limit 40 --batch 20 --steps $n --solver dpm++2m
done
run dpm-20-bo4 $M --limit 40 --batch 20 --steps 20 --solver dpm++2m
run ddim-10-bo4-tf $M --limit 40 --batch 20 --steps 10 --solver ddim --teacher-forced
sed -n 41,80p $E > runs/iclevr-val-41-80.jsonl
EPISODES=runs/iclevr-val-41-80.jsonl run ddim-10-bo4-41-80 $M --batch 20 --steps 10 --solver ddim
EPISODES=runs/iclevr-val-41-80.jsonl run ddim-8-bo4-41-80 $M --batch 20 --steps 8 --solver ddim
[ -z "$STUDENT" ] || run student-ddim-10-bo4 $STUDENT --limit 40 --batch 20 --steps 10 --solver ddim
if [ -n "$PD_STUDENT" ]; then
  run pd-5-bo4 $PD_STUDENT --limit 40 --batch 20
  run pd-5-bo4-tf $PD_STUDENT --limit 40 --batch 20 --teacher-forced
  run pd-5-bo4-reencode $PD_STUDENT --limit 40 --batch 20 --reencode-reference
  run pd-8-bo4 $PD_STUDENT --limit 40 --batch 20 --steps 8
  run pd-10-bo4 $PD_STUDENT --limit 40 --batch 20 --steps 10
fi
