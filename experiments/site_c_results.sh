#!/usr/bin/env bash
# Synthesis + detection metrics of a model on a prepared phantom test cohort: `gdsynth predict`
# (reading the cohort's preparation cache when the model's preparation matches it: a card with
# spacing_mm null, as the model copies of experiments/detection_stage.py --native-spacing) and
# `gdsynth evaluate` against the phantom truth.
#
#   experiments/site_c_results.sh MODEL TEST_BIDS OUT
#
# MODEL: a model folder; TEST_BIDS: a phantom cohort prepared by `gdsynth prepare`;
# OUT: predictions (OUT/pred) and report (OUT/evaluation: per_exam.tsv, summary tables).
set -euo pipefail
model=$1; bids=$2; out=$3
gd=${GDSYNTH:-gdsynth}
mkdir -p "$out"
$gd -q predict "$bids" -m "$model" -o "$out/pred" --device cpu
$gd -q evaluate "$out/pred" -r "$bids" -o "$out/evaluation"
