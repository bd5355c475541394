# coding=utf-8
"""The console commands of the `bert` package (`bert-run-classifier`, ...).

Each command runs its script exactly as `python run_classifier.py ...` does
from a clone (the script's `if __name__ == "__main__":` block, the same flags).
"""

import runpy


def _command(script):
  def main():
    import bert  # pylint: disable=g-import-not-at-top,unused-import
    # Served by the package's finder: the script file as `__main__`.
    runpy.run_module(script, run_name="__main__", alter_sys=True)
  main.__name__ = script
  return main


run_classifier = _command("run_classifier")
run_classifier_with_tfhub = _command("run_classifier_with_tfhub")
run_squad = _command("run_squad")
run_pretraining = _command("run_pretraining")
create_pretraining_data = _command("create_pretraining_data")
extract_features = _command("extract_features")
run_ner = _command("run_ner")
run_fill_mask = _command("run_fill_mask")
convert_checkpoint = _command("convert_checkpoint")
export_hub = _command("export_hub")
