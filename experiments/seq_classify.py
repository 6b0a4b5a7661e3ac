"""Row-by-row Fashion-MNIST with an LSTM or GRU: each image is a sequence of 28 rows of 28 pixels.

    python experiments/seq_classify.py             # the BUILD_NOTES.md run: >= 88% test accuracy within 15 minutes
    python experiments/seq_classify.py --cell gru
    python experiments/seq_classify.py --smoke --out /tmp/seq

Model: normalised rows (B, 28, 28) -> one LSTM layer of 128 units -> its state after the last row -> dense 10.
Training: AdamW(2e-3) with warm-up + cosine decay over 20 epochs of batches of 128, no augmentation, the
image-classifier recipe of mlp.py and cnn.py (image_classifier.py): exact validation every epoch with the
wall-clock time of each evaluation (val_accuracy_at_15min), test accuracy at the end. Writes results.json,
metrics.jsonl, checkpoints and curves.png.
"""
import common
import flagcheck
import image_classifier


def make_model(num_classes, image_shape, args):
    from deepcore import layers as L
    from deepcore.models.rnn import seq_classifier

    if tuple(image_shape[-1:]) != (1,):
        raise common.UsageError(f"--dataset {args.dataset}: rows of a one-channel image are needed, got images "
                                f"of shape {tuple(image_shape)}")
    rows = L.Lambda(lambda x: x[..., 0], name="rows")                # (B, H, W, 1) -> (B, H steps, W features)
    net = seq_classifier(num_classes, hidden=args.hidden, cell=args.cell, num_layers=args.layers,
                         bidirectional=args.bidirectional)
    return L.serial({"rows": rows, "rnn": net})


def parser():
    p = common.parser("seq_classify", __doc__.splitlines()[0], epochs=20, batch_size=128, lr=2e-3)
    image_classifier.add_flags(p, augment="none", weight_decay=0.0, warmup=0.02, label_smoothing=0.0, ynn="off")
    p.add_argument("--cell", choices=("lstm", "gru"), default="lstm", help="recurrent cell")
    p.add_argument("--hidden", type=int, default=128, help="units per recurrent layer")
    p.add_argument("--layers", type=int, default=1, help="stacked recurrent layers")
    p.add_argument("--bidirectional", action="store_true", help="read the rows both ways (2x the cost)")
    flagcheck.at_least(p, 1, "--hidden", "--layers")
    return p


def main(args):
    if args.smoke:
        args.hidden = min(args.hidden, 32)
    return image_classifier.main(args, make_model)


if __name__ == "__main__":
    common.run(main, parser())
