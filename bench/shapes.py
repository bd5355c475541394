# coding=utf-8
"""The BERT shapes the by-hand benchmarks build (random weights).

`SIZES[name]` holds `modeling.BertConfig` keyword arguments; the same shapes as
`../shared/bench/benchlib.py` (BERT-Base and BERT-Mini). Imported by the
bench/ scripts, which run with bench/ on sys.path.
"""

VOCAB_SIZE = 30522

SIZES = {
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072),
    "mini": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                 intermediate_size=1024),
}
