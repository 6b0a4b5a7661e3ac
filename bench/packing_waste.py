"""Packing waste on the fortunes corpus: the share of token positions that train nothing.

    python bench/packing_waste.py --data-dir /tmp/tfds [--seq-len 128 256 512] [--batch-size 32]

Prepares ``deepcore_documents/fortunes`` (one record per fortune) offline if needed, packs it with
``deepcore.data.packed_text`` (character level) and prints, per sequence length, the fractions of the
epoch's tokens that are masked (targets that start the next document), dropped (after the epoch's last
full batch) and their total. Not a timing: counts only.
"""
import argparse
import tempfile

import numpy as np

from deepcore.data import data_source, packed_text, packing_waste


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None, help="TFDS data_dir (default: a fresh temporary directory)")
    p.add_argument("--split", default="train")
    p.add_argument("--seq-len", type=int, nargs="+", default=[128, 256, 512])
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args()
    docs = data_source("fortunes", args.split, data_dir=args.data_dir or tempfile.mkdtemp(prefix="tfds-"),
                       download=False, documents=True)
    lengths = None
    for t in args.seq_len:
        pipe = packed_text(docs, t, args.batch_size, seed=0, process_index=0, process_count=1,
                           lengths=lengths, tokenizer=None if lengths is None else tok)
        lengths, tok = pipe.read.lengths, pipe.read.tokenizer
        w = packing_waste(pipe)
        batch = pipe.batch(0)
        print(f"fortunes/{args.split}: {len(docs)} documents, {int(lengths.sum()):,} characters "
              f"(mean {lengths.mean():.0f}, vocabulary {len(tok.vocab)}); seq_len {t}, batch {args.batch_size}: "
              f"masked {w['masked']:.2%}, dropped {w['dropped']:.2%}, wasted {w['total']:.2%}; "
              f"{np.mean(batch['segment_ids'].max(1)):.1f} documents per row")


if __name__ == "__main__":
    main()
