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


def export_run(run_dir: str, path: str, input_shape: Optional[Sequence[int]] = None
               ) -> keras.Model:
    """Saves the finished run's network as a plain Keras model (.keras) at `path`.

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
    arguments = parser.parse_args(argv)
    exported = export_run(arguments.run_dir, arguments.path)
    print(f"wrote {arguments.path}: {exported.count_params():,} parameters, "
          f"{sparsity(exported):.2%} of the kernels' weights 0")


if __name__ == "__main__":
    main()
