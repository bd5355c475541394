#!/usr/bin/env bash
# `make demo`: pretrain a small BERT from scratch on the bundled text, end to end.
#
#   1. build a WordPiece vocabulary from demo/corpus.txt (demo/make_vocab.py);
#   2. write a small bert_config.json (2 layers, hidden 128);
#   3. create_pretraining_data.py: masked-LM / next-sentence TFRecords;
#   4. run_pretraining.py --do_train --do_eval: a few hundred steps, then evaluation.
#
# Everything goes to demo_output/ (git-ignored); each run starts a fresh model.
# Takes a few minutes on 2 CPU cores. Environment overrides (all optional):
#   PYTHON (python3), DEMO_OUTPUT_DIR (demo_output), DEMO_TRAIN_STEPS (300),
#   DEMO_VOCAB_SIZE (2000).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
OUT="${DEMO_OUTPUT_DIR:-demo_output}"
TRAIN_STEPS="${DEMO_TRAIN_STEPS:-300}"
VOCAB_SIZE="${DEMO_VOCAB_SIZE:-2000}"
CORPUS="demo/corpus.txt"
VOCAB="${OUT}/vocab.txt"
CONFIG="${OUT}/bert_config.json"
RECORDS="${OUT}/tf_examples.tfrecord"
MODEL_DIR="${OUT}/pretraining_output"

export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

for script in create_pretraining_data.py run_pretraining.py; do
  if [[ ! -f "${script}" ]]; then
    echo "ERROR: ${script} not found in $(pwd); run make demo from a complete checkout." >&2
    exit 1
  fi
done

demo_start=${SECONDS}
stage_start=${SECONDS}

stage() {
  echo
  echo "==== $* ===="
  stage_start=${SECONDS}
}

stage_done() {
  echo "---- done in $((SECONDS - stage_start)) s"
}

# Prints a command (so it can be copied), then runs it.
run() {
  printf '+'
  printf ' %s' "$@"
  printf '\n'
  "$@"
}

mkdir -p "${OUT}"

stage "1/4 Building a ${VOCAB_SIZE}-token WordPiece vocabulary from ${CORPUS}"
run "${PYTHON}" demo/make_vocab.py \
  --input_file="${CORPUS}" \
  --output_file="${VOCAB}" \
  --vocab_size="${VOCAB_SIZE}" \
  --do_lower_case=True
vocab_lines=$(wc -l < "${VOCAB}")
vocab_lines=$((vocab_lines + 0))
echo "${VOCAB}: ${vocab_lines} tokens"
stage_done

stage "2/4 Writing a small model config to ${CONFIG}"
cat > "${CONFIG}" <<EOF
{
  "attention_probs_dropout_prob": 0.1,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "hidden_size": 128,
  "initializer_range": 0.02,
  "intermediate_size": 512,
  "max_position_embeddings": 128,
  "num_attention_heads": 2,
  "num_hidden_layers": 2,
  "type_vocab_size": 2,
  "vocab_size": ${vocab_lines}
}
EOF
cat "${CONFIG}"
stage_done

stage "3/4 Creating pretraining data: ${RECORDS}"
run "${PYTHON}" create_pretraining_data.py \
  --input_file="${CORPUS}" \
  --output_file="${RECORDS}" \
  --vocab_file="${VOCAB}" \
  --do_lower_case=True \
  --max_seq_length=128 \
  --max_predictions_per_seq=20 \
  --masked_lm_prob=0.15 \
  --random_seed=12345 \
  --dupe_factor=10
stage_done

stage "4/4 Pretraining for ${TRAIN_STEPS} steps, then evaluating: ${MODEL_DIR}"
# A fresh model each time (an existing output_dir would be resumed from).
rm -rf "${MODEL_DIR}"
run "${PYTHON}" run_pretraining.py \
  --input_file="${RECORDS}" \
  --output_dir="${MODEL_DIR}" \
  --bert_config_file="${CONFIG}" \
  --do_train=True \
  --do_eval=True \
  --train_batch_size=32 \
  --eval_batch_size=8 \
  --max_seq_length=128 \
  --max_predictions_per_seq=20 \
  --num_train_steps="${TRAIN_STEPS}" \
  --num_warmup_steps=30 \
  --learning_rate=1e-3 \
  --save_checkpoints_steps=100 \
  --iterations_per_loop=50 \
  --max_eval_steps=100
stage_done

# Where everything is.
checkpoint=""
if [[ -f "${MODEL_DIR}/checkpoint" ]]; then
  checkpoint=$(sed -n 's/^model_checkpoint_path: *"\(.*\)"$/\1/p' "${MODEL_DIR}/checkpoint")
fi
if [[ -z "${checkpoint}" ]]; then
  checkpoint=$(ls "${MODEL_DIR}" | sed -n 's/^\(model\.ckpt-[0-9]*\)\.index$/\1/p' \
               | sort -t- -k2 -n | tail -n 1)
fi
if [[ -n "${checkpoint}" && "${checkpoint}" != /* ]]; then
  checkpoint="${MODEL_DIR}/${checkpoint}"
fi
event_dirs=$(find "${MODEL_DIR}" -name 'events.out.tfevents.*' -exec dirname {} \; \
             | sort -u | tr '\n' ' ')

echo
echo "================================================================"
echo " BERT demo finished in $((SECONDS - demo_start)) s"
echo "================================================================"
echo " vocabulary      : ${VOCAB} (${vocab_lines} tokens)"
echo " model config    : ${CONFIG}"
echo " training data   : ${RECORDS}"
echo " checkpoint      : ${checkpoint:-none found} (.index + .data-00000-of-00001)"
echo " eval results    : ${MODEL_DIR}/eval_results.txt"
echo " TensorBoard logs: ${event_dirs:-none found}"
echo "                   view with: tensorboard --logdir ${MODEL_DIR}"
echo "----------------------------------------------------------------"
if [[ -f "${MODEL_DIR}/eval_results.txt" ]]; then
  cat "${MODEL_DIR}/eval_results.txt"
else
  echo "ERROR: ${MODEL_DIR}/eval_results.txt was not written." >&2
  exit 1
fi
echo "----------------------------------------------------------------"
echo " masked_lm_accuracy by chance would be about 1/${vocab_lines}."

# What a user wants to see after pretraining: ask the model to fill in blanks
# in sentences of the corpus (run_fill_mask.py, README "Fill-mask").
if [[ -f run_fill_mask.py && -n "${checkpoint}" ]]; then
  stage "Asking the pretrained model to fill in blanks (run_fill_mask.py)"
  QUESTIONS="${OUT}/fill_mask_questions.txt"
  ANSWERS="${OUT}/fill_mask_answers.jsonl"
  cat > "${QUESTIONS}" <<'QEOF'
The first traders arrive before sunrise, when the cobbles are still wet with [MASK].
Old Mrs. Harlow sells [MASK] from her own hens, brown and speckled.
The cheese seller cuts thin [MASK] for anyone who wants to taste before buying.
Good bread needs only four things: flour, water, [MASK] and yeast.
A single hive in summer may hold fifty thousand [MASK].
He fixed them with copper [MASK], bending the tips over on the inside with a small hammer.
QEOF
  run "${PYTHON}" run_fill_mask.py \
    --bert_config_file="${CONFIG}" \
    --vocab_file="${VOCAB}" \
    --init_checkpoint="${checkpoint}" \
    --do_lower_case=True \
    --input_file="${QUESTIONS}" \
    --output_file="${ANSWERS}" \
    --top_k=3 \
    --max_seq_length=128
  "${PYTHON}" - "${ANSWERS}" <<'PYEOF'
import json
import sys
for row in open(sys.argv[1], encoding="utf-8"):
  record = json.loads(row)
  print(record["text"])
  for mask in record["masks"]:
    answers = ", ".join("%s (%.2f)" % (p["token"], p["probability"])
                        for p in mask["predictions"])
    print("    [MASK] -> " + answers)
PYEOF
  echo "(A few hundred steps teach the model little more than word frequencies; raise"
  echo " DEMO_TRAIN_STEPS for sharper answers. Full output: ${ANSWERS})"
  stage_done
fi
