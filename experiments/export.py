"""Export a ticket: a finished run's network as a plain Keras model.

``export_run(run_dir, path)`` rebuilds the run's Keras model (from the
configuration in its done.json), loads its final/ values (effective kernels,
so pruned weights are exactly 0; biases; batch normalization values) and
saves it as a .keras file that loads and predicts with Keras alone:

    model = keras.models.load_model("ticket.keras")

``compact(keras_model)`` removes what unit or filter pruning left dead (see it).
"""

import os
from typing import Optional, Sequence

import keras
import numpy as np

from lottery_ticket.experiments import build
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import paths, runs, save_restore
from lottery_ticket.foundations.keras_model import KerasModel


def run_model(run_dir: str, input_shape: Optional[Sequence[int]] = None) -> KerasModel:
    """The finished run's network as a KerasModel holding its final values.

    Args:
      run_dir: a complete run directory (done.json, final/, masks/).
      input_shape: one example's shape; default: read from the run's data set.

    Raises:
      FileNotFoundError: the run is not complete.
      ValueError: the run's model is not a Keras model.
    """
    done = runs.read_done(run_dir)
    config = ExperimentConfig.from_json(done["run_info"]["config"])
    final = save_restore.restore_network(paths.final(run_dir))
    masks = save_restore.restore_network(paths.masks(run_dir))
    model = build.model(config, presets=final, masks=masks, seed=0)
    if not isinstance(model, KerasModel):
        raise ValueError(f"the run's model {config['model']!r} is not a Keras model; export "
                         "takes runs of Keras models (resnet20, vgg16, --model=module:function).")
    if input_shape is None:
        input_shape = build.dataset(config, 0).example_shape
    return model.build(tuple(input_shape))


def export_run(run_dir: str, path: str, input_shape: Optional[Sequence[int]] = None,
               compacted: bool = False) -> keras.Model:
    """Saves the finished run's network as a plain Keras model (.keras) at `path`;
    with `compacted`, without the units and filters pruning left unread (compact()).

    Returns:
      The saved Keras model.

    Raises:
      FileExistsError: `path` exists (an export is never overwritten).
      ValueError: as run_model, or a path that does not end in .keras.
    """
    if not str(path).endswith(".keras"):
        raise ValueError(f"export path {path!r} must end in .keras.")
    if os.path.exists(path):
        raise FileExistsError(f"{path} exists; exports are never overwritten: choose "
                              "another path or delete it.")
    exported = run_model(run_dir, input_shape).to_keras()
    if compacted:
        exported = compact(exported)
    temporary = f"{path}.partial.keras"
    exported.save(temporary)
    os.replace(temporary, path)
    return exported


def sparsity(model: keras.Model) -> float:
    """Fraction of the Dense and Conv2D kernels' weights that are exactly 0."""
    kernels = [layer.kernel.numpy() for layer in model.layers
               if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D))]
    total = sum(k.size for k in kernels)
    return float(sum(int(np.sum(k == 0)) for k in kernels) / total)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """python -m lottery_ticket.experiments.export RUN_DIR TICKET.keras"""
    import argparse
    parser = argparse.ArgumentParser(description="Export a finished run's network as a "
                                     "plain Keras model (.keras).")
    parser.add_argument("run_dir", help="a complete run directory (with done.json)")
    parser.add_argument("path", help="where to write the .keras file")
    parser.add_argument("--compact", action="store_true",
                        help="remove the units and filters unit pruning left unread "
                        "(Sequential models)")
    arguments = parser.parse_args(argv)
    exported = export_run(arguments.run_dir, arguments.path, compacted=arguments.compact)
    print(f"wrote {arguments.path}: {exported.count_params():,} parameters, "
          f"{sparsity(exported):.2%} of the kernels' weights 0")


if __name__ == "__main__":
    main()


_PRUNABLE = (keras.layers.Dense, keras.layers.Conv2D)
# Layers that act on each channel alone (or not on channels at all): a channel removed
# before them is removed after them.
_CHANNELWISE = (keras.layers.BatchNormalization, keras.layers.Dropout, keras.layers.Activation,
                keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.MaxPooling2D,
                keras.layers.AveragePooling2D, keras.layers.GlobalAveragePooling2D,
                keras.layers.GlobalMaxPooling2D, keras.layers.Flatten)


def compact(model: keras.Model) -> keras.Model:
    """A smaller Keras model computing the same outputs (to float rounding): every
    unit or filter whose outputs the next Dense/Conv2D layer never reads (its rows
    of the next kernel all 0, as unit and filter pruning leave them) is removed,
    with its kernel column, bias, batch normalization values and the next kernel's
    rows. The output layer keeps all its units.

    Args:
      model: a keras.Sequential of Dense, Conv2D and channel-wise layers
        (BatchNormalization, Dropout, activations, pooling, Flatten), e.g. an
        exported ticket (KerasModel.to_keras).

    Raises:
      ValueError: another kind of model or layer (named).
    """
    if not isinstance(model, keras.Sequential):
        raise ValueError(f"compact() takes a keras.Sequential model, not {type(model).__name__}: "
                         "a model with branches (residual Add) cannot drop a channel in one "
                         "branch alone. Export it masked (export_run) instead.")
    layers = list(model.layers)
    other = [f"{layer.name} ({type(layer).__name__})" for layer in layers
             if not isinstance(layer, _PRUNABLE + _CHANNELWISE)]
    if other:
        raise ValueError(f"compact() cannot carry channels through {', '.join(other)}; it "
                         "takes Dense, Conv2D and channel-wise layers only.")
    weights = [[np.asarray(w) for w in layer.get_weights()] for layer in layers]
    prunable = [index for index, layer in enumerate(layers) if isinstance(layer, _PRUNABLE)]
    sizes: dict = {}
    for position, index in enumerate(prunable[:-1]):
        following = prunable[position + 1]
        kernel, next_kernel = weights[index][0], weights[following][0]
        channels = kernel.shape[-1]
        flattened = any(isinstance(layers[i], keras.layers.Flatten)
                        for i in range(index + 1, following))
        if next_kernel.ndim == 4:
            used = np.any(next_kernel != 0, axis=(0, 1, 3))
        elif flattened and kernel.ndim == 4:
            used = np.any(next_kernel.reshape(-1, channels, next_kernel.shape[-1]) != 0,
                          axis=(0, 2))
        else:
            used = np.any(next_kernel != 0, axis=1)
        if not used.any():
            used[0] = True  # a layer keeps one unit, so that the model stays whole
        weights[index] = [w[..., used] for w in weights[index]]  # kernel columns, bias
        for between in range(index + 1, following):
            if isinstance(layers[between], keras.layers.BatchNormalization):
                weights[between] = [w[used] for w in weights[between]]
        if flattened and kernel.ndim == 4:
            rows = next_kernel.reshape(-1, channels, next_kernel.shape[-1])[:, used, :]
            weights[following][0] = rows.reshape(-1, next_kernel.shape[-1])
        elif next_kernel.ndim == 4:
            weights[following][0] = next_kernel[:, :, used, :]
        else:
            weights[following][0] = next_kernel[used]
        sizes[index] = int(used.sum())
    rebuilt = []
    for index, layer in enumerate(layers):
        config = layer.get_config()
        if index in sizes:
            config["units" if isinstance(layer, keras.layers.Dense) else "filters"] = sizes[index]
        rebuilt.append(type(layer).from_config(config))
    smaller = keras.Sequential([keras.Input(tuple(model.input_shape[1:]))] + rebuilt,
                               name=f"{model.name}_compact")
    for layer, values in zip(smaller.layers, weights):
        layer.set_weights(values)
    return smaller
