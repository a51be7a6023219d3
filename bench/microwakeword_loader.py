"""Load wakeprep's microWakeWord export with microWakeWord's own data loader.

Reads ``results/microwakeword/training_parameters.yaml`` the way microWakeWord's trainer
does (``microwakeword.model_train_eval.load_config`` with the training notebook's
mixednet flags), builds ``microwakeword.data.FeatureHandler`` from it, and takes out a
training batch and every validation, testing and ambient set, printing their shapes,
labels and durations. It fails when a set is missing, a batch has the wrong length, or
a value is not microWakeWord's feature scale.

It cannot run in CI (microWakeWord is not on the package index and CI cannot reach
GitHub), and its dependencies stay out of pyproject.toml. Set-up, once::

    git clone https://github.com/kahrendt/microWakeWord /tmp/microWakeWord   # not committed here
    python3 -m venv --system-site-packages /tmp/mww-venv
    /tmp/mww-venv/bin/pip install tensorflow-cpu mmap_ninja absl-py audiomentations datasets audio_metadata

then, after ``snakemake --cores 2`` (export.microwakeword: true), from the repository root::

    PYTHONPATH=/tmp/microWakeWord /tmp/mww-venv/bin/python bench/microwakeword_loader.py \\
        --config results/microwakeword/training_parameters.yaml

(microWakeWord's trainer itself also needs ``tensorboard`` and, on TensorFlow 2.21, its own
fix for ``.numpy()`` on NumPy arrays and the removed ``np.trapz``; the loader works as is.)
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The training notebook's model flags (mixednet, stride 3).
NOTEBOOK_FLAGS = dict(
    training_config=None, train=0, restore_checkpoint=0, test_tf_nonstreaming=0, test_tflite_nonstreaming=0,
    test_tflite_nonstreaming_quantized=0, test_tflite_streaming=0, test_tflite_streaming_quantized=0,
    use_weights="best_weights", model_name="mixednet", pointwise_filters="64,64,64,64",
    repeat_in_block="1, 1, 1, 1", mixconv_kernel_sizes="[5], [7,11], [9,15], [23]", residual_connection="0,0,0,0",
    first_conv_filters=32, first_conv_kernel_size=5, stride=3, max_pool=0, spatial_attention=0, pooled=0,
)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="results/microwakeword/training_parameters.yaml")
    ap.add_argument("--batch-size", type=int, default=128)
    args = ap.parse_args(argv)

    import numpy as np
    import microwakeword.data as input_data
    import microwakeword.mixednet as mixednet
    from microwakeword.model_train_eval import load_config

    flags = argparse.Namespace(**{**NOTEBOOK_FLAGS, "training_config": args.config})
    t0 = time.monotonic()
    config = load_config(flags, mixednet)
    print(f"config: {args.config}")
    print(f"window_step_ms {config['window_step_ms']}, clip_duration_ms {config['clip_duration_ms']}, stride "
          f"{config['stride']}: spectrogram_length {config['spectrogram_length']} frames "
          f"(final layer {config['spectrogram_length_final_layer']})")
    handler = input_data.FeatureHandler(config)
    print(f"FeatureHandler: {len(handler.feature_providers)} feature sets loaded in {time.monotonic() - t0:.2f} s")
    for fs, prov in zip(config["features"], handler.feature_providers):
        sizes = {m: prov.get_mode_size(m) for m in ("training", "validation", "testing", "validation_ambient",
                                                    "testing_ambient")}
        print(f"  {fs['features_dir']}: truth {fs['truth']}, weights {fs['sampling_weight']}/{fs['penalty_weight']}, "
              f"{fs['truncation_strategy']}; " + ", ".join(f"{m} {n}" for m, n in sizes.items()))
    for mode in ("training", "validation", "testing", "validation_ambient", "testing_ambient"):
        print(f"  {mode}: {handler.get_mode_size(mode)} spectrograms, {handler.get_mode_duration(mode) / 3600:.4f} h")

    length = config["spectrogram_length"]
    problems = []

    def check_values(name, data):
        arrays = data if isinstance(data, list) else [data]
        for a in arrays:
            a = np.asarray(a)
            if a.size and not np.array_equal(np.round(a * 25.6), a * 25.6):
                problems.append(f"{name}: values are not multiples of 1/25.6")
                return

    data, labels, weights = handler.get_data("training", batch_size=args.batch_size, features_length=length,
                                             truncation_strategy="default")
    print(f"training batch: data {data.shape} {data.dtype}, labels {int(labels.sum())} positive / "
          f"{int((labels == 0).sum())} negative, weights {sorted(set(weights.tolist()))}, "
          f"values {data.min():.4f}..{data.max():.4f}")
    if data.shape != (args.batch_size, length, 40):
        problems.append(f"training batch has shape {data.shape}")
    check_values("training", data)
    for mode in ("validation", "testing"):
        data, labels, weights = handler.get_data(mode, batch_size=args.batch_size, features_length=length,
                                                 truncation_strategy="truncate_start")
        print(f"{mode}: data {data.shape}, labels {int(labels.sum())} positive / {int((labels == 0).sum())} negative")
        if not len(data):
            problems.append(f"{mode} set is empty")
        check_values(mode, data)
    for mode, strategy in (("validation_ambient", "split"), ("testing_ambient", "none")):
        if handler.get_mode_size(mode) == 0:
            print(f"{mode}: EMPTY (false accepts per hour cannot be measured)")
            problems.append(f"{mode} set is empty")
            continue
        data, labels, _ = handler.get_data(mode, batch_size=args.batch_size, features_length=length,
                                           truncation_strategy=strategy)
        shapes = [np.shape(d) for d in data]
        print(f"{mode} ({strategy}): {len(data)} spectrograms, lengths {min(s[0] for s in shapes)}.."
              f"{max(s[0] for s in shapes)} frames, labels all {set(np.asarray(labels).tolist())}")
        check_values(mode, data)
    for p in problems:
        print("PROBLEM:", p)
    print("ok" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
