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
    """Saves a finished run's network as a plain Keras model (.keras).

    Saves the finished run's network as a plain Keras model (.keras) at `path`;
    with `compacted`, without the units and filters pruning left unread (compact()).

    Args:
      run_dir: the finished run's directory.
      path: where the .keras file is written (must not exist).
      input_shape: one example's shape; default: read from the run's data set.
      compacted: leave out the units and filters that pruning left unread.

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
    """Fraction of the Dense and Conv2D kernels' weights that are exactly 0.

    Args:
      model: a Keras model.
    """
    kernels = [layer.kernel.numpy() for layer in model.layers
               if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D))]
    total = sum(k.size for k in kernels)
    return float(sum(int(np.sum(k == 0)) for k in kernels) / total)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """The command line: ``python -m lottery_ticket.experiments.export RUN_DIR TICKET.keras``.

    Args:
      argv: the command-line arguments (None: sys.argv[1:]).
    """
    import argparse
    parser = argparse.ArgumentParser(description="Export a finished run's network as a "
                                     "plain Keras model (.keras).")
    parser.add_argument("run_dir", help="a complete run directory (with done.json)")
    parser.add_argument("path", help="where to write the .keras file")
    parser.add_argument("--compact", action="store_true",
                        help="remove the units and filters unit pruning left unread "
                        "(Sequential and functional models)")
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
    """A smaller Keras model computing the same outputs (to float rounding).

    Every unit or filter that nothing downstream reads is removed, with its kernel column,
    bias, batch normalization values and the consumers' kernel rows. The output layer keeps
    all its units.

    Sequential models: a unit goes when the next Dense/Conv2D layer's rows for it
    are all 0 (as unit and filter pruning leave them). Functional models (e.g. a
    filter-pruned ResNet): the tensors joined by an Add (and the channel-wise
    layers around it) share their channels, so a channel goes only from all of
    them at once, and only where every Dense/Conv2D reading any of them either
    has all-0 rows for it or reads a value that is exactly 0 there (a pruned
    filter's output after bias, batch normalization and activation: BN(0) is
    beta - gamma * mean / sqrt(var + eps), usually not 0, and then the channel
    is kept). Nothing is folded, so the result is exact.

    Args:
      model: a keras.Sequential or functional model of Dense, Conv2D,
        channel-wise layers (BatchNormalization, Dropout, activations, pooling,
        Flatten) and, in functional models, Add; e.g. an exported ticket
        (KerasModel.to_keras).

    Raises:
      ValueError: another kind of model or layer (named).
    """
    if not isinstance(model, keras.Sequential):
        if not _is_functional(model):
            raise ValueError(f"compact() takes a Sequential or functional Keras model, not a "
                             f"subclassed {type(model).__name__}: rebuild it as a functional "
                             "model, or export it masked (export_run) instead.")
        return _compact_functional(model)
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


def _is_functional(model: keras.Model) -> bool:
    try:
        config = model.get_config()
    except Exception:  # noqa: BLE001 - subclassed models raise several kinds
        return False
    return isinstance(config, dict) and "input_layers" in config and "layers" in config


def _history(argument) -> list:
    """The (layer, node, index) of each tensor named in a node's arguments."""
    if isinstance(argument, dict):
        if "keras_history" in argument.get("config", {}):
            return [tuple(argument["config"]["keras_history"])]
        return [found for value in argument.values() for found in _history(value)]
    if isinstance(argument, (list, tuple)):
        return [found for value in argument for found in _history(value)]
    return []


_ELEMENTWISE = (keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU,
                keras.layers.BatchNormalization)


def _compact_functional(model: keras.Model) -> keras.Model:
    """compact() of a functional model: channel groups through Add (see compact)."""
    config = model.get_config()
    parent: list = []  # union-find over channel groups
    fixed: set = set()

    def find(group: int) -> int:
        while parent[group] != group:
            group = parent[group]
        return group

    space: dict = {}      # layer name -> (group, flattened from C channels or 0)
    constant: dict = {}   # layer name -> each channel's value if constant, else NaN
    producers: dict = {}  # layer name -> its output group (Dense, Conv2D)
    consumers: list = []  # (layer name, input layer name)
    sliced: dict = {}     # BatchNormalization name -> group
    weights = {layer.name: [np.asarray(w) for w in layer.get_weights()]
               for layer in model.layers}
    for entry in config["layers"]:
        name = entry["name"]
        layer = model.get_layer(name)
        nodes = entry["inbound_nodes"]
        if len(nodes) > 1:
            raise ValueError(f"compact() cannot compact layer {name!r}: it is called more "
                             "than once (shared); export the model masked instead.")
        inputs = [history[0] for history in _history(nodes[0])] if nodes else []
        channels = int(layer.output.shape[-1])
        if isinstance(layer, keras.layers.InputLayer):
            parent.append(len(parent))
            fixed.add(len(parent) - 1)
            space[name], constant[name] = (len(parent) - 1, 0), np.full(channels, np.nan)
        elif isinstance(layer, _PRUNABLE):
            if not isinstance(layer, keras.layers.Dense) and space[inputs[0]][1]:
                raise ValueError(f"compact() cannot compact {name!r}: a Conv2D after Flatten.")
            consumers.append((name, inputs[0]))
            parent.append(len(parent))
            producers[name] = len(parent) - 1
            kernel = weights[name][0]
            dead = ~np.any(kernel.reshape(-1, channels) != 0, axis=0)
            bias = weights[name][1] if layer.use_bias else np.zeros(channels, np.float32)
            value = np.asarray(layer.activation(bias.astype(np.float32)))  # e.g. sigmoid(0)
            space[name] = (len(parent) - 1, 0)
            constant[name] = np.where(dead, value, np.nan)
        elif isinstance(layer, keras.layers.Add):
            groups = [space[i] for i in inputs]
            if any(flat for _, flat in groups):
                raise ValueError(f"compact() cannot compact {name!r}: an Add after Flatten.")
            root = find(groups[0][0])
            for group, _ in groups[1:]:
                parent[find(group)] = root
            space[name] = (root, 0)
            constant[name] = np.sum([constant[i] for i in inputs], axis=0)  # NaN stays NaN
        elif isinstance(layer, _CHANNELWISE):
            group, flat = space[inputs[0]]
            if isinstance(layer, keras.layers.Flatten) and len(layer.input.shape) > 2:
                flat = int(layer.input.shape[-1])
            space[name] = (group, flat)
            values = constant[inputs[0]]
            if isinstance(layer, _ELEMENTWISE) and not flat:
                if isinstance(layer, keras.layers.BatchNormalization):
                    sliced[name] = group
                known = np.isfinite(values)
                shape = (1,) * (len(layer.input.shape) - 1) + (channels,)
                probe = np.where(known, values, 0).astype(np.float32).reshape(shape)
                computed = np.asarray(layer(probe, training=False)).reshape(channels)
                values = np.where(known, computed, np.nan)
            constant[name] = values
        else:
            raise ValueError(f"compact() cannot carry channels through {name!r} "
                             f"({type(layer).__name__}); it takes Dense, Conv2D, Add and "
                             "channel-wise layers only. Export the model masked instead.")
    outputs = config["output_layers"]
    for output in [outputs] if outputs and isinstance(outputs[0], str) else outputs:
        fixed.add(space[output[0]][0])
    fixed = {find(group) for group in fixed}
    sizes = {find(group): None for group in range(len(parent))}
    for name in producers:
        sizes[find(producers[name])] = weights[name][0].shape[-1]
    removable = {group: np.full(size, group not in fixed) for group, size in sizes.items()
                 if size is not None}
    for name, source in consumers:
        group, flat = space[source]
        group = find(group)
        if group not in removable:
            continue
        kernel = weights[name][0]
        channels = removable[group].size
        if flat:
            read = np.any(kernel.reshape(-1, channels, kernel.shape[-1]) != 0, axis=(0, 2))
        else:
            read = np.any(np.moveaxis(kernel, -2, 0).reshape(channels, -1) != 0, axis=1)
        removable[group] &= ~read | (constant[source] == 0)
    keep = {}
    for group, gone in removable.items():
        kept = ~gone
        if not kept.any():
            kept[0] = True  # a layer keeps one unit, so that the model stays whole
        keep[group] = kept
    for name, group in producers.items():
        kept = keep[find(group)]
        weights[name] = [w[..., kept] for w in weights[name]]
    for name, group in sliced.items():
        if find(group) in keep:
            weights[name] = [w[keep[find(group)]] for w in weights[name]]
    for name, source in consumers:
        group, flat = space[source]
        if find(group) not in keep:
            continue
        kept, kernel = keep[find(group)], weights[name][0]
        if flat:
            rows = kernel.reshape(-1, kept.size, kernel.shape[-1])[:, kept, :]
            weights[name][0] = rows.reshape(-1, kernel.shape[-1])
        else:
            weights[name][0] = np.compress(kept, kernel, axis=-2)
    for entry in config["layers"]:
        entry.pop("build_config", None)  # the old channel counts: built anew when called
        if entry["name"] in producers:
            key = "units" if entry["class_name"] == "Dense" else "filters"
            entry["config"][key] = int(weights[entry["name"]][0].shape[-1])
    config["name"] = f"{model.name}_compact"
    smaller = keras.Model.from_config(config)
    for layer in smaller.layers:
        if weights.get(layer.name):
            layer.set_weights(weights[layer.name])
    return smaller
