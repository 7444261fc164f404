"""The Conv-2/4/6 architectures as plain data: stages, layer names, the paper's rates.

Kept apart from foundations.model_conv, which builds the networks with
TensorFlow, so that configurations and argfiles read them without importing it.
"""

from typing import Dict, Sequence, Tuple, Union

Stages = Tuple[Tuple[int, ...], ...]

# Filters of the convolutions of each stage; every stage ends in a 2x2 max-pool.
ARCHITECTURES: Dict[str, Stages] = {
    "conv2": ((64, 64),),
    "conv4": ((64, 64), (128, 128)),
    "conv6": ((64, 64), (128, 128), (256, 256)),
}
DENSE_UNITS = (256, 256)
OUTPUT_LAYER = "output"


def conv_layer_names(stages: Stages) -> Tuple[str, ...]:
    """conv0, conv1, ... for every convolution of `stages`.

    Args:
      stages: the filter counts of each stage's convolutions.
    """
    count = sum(len(stage) for stage in stages)
    return tuple(f"conv{index}" for index in range(count))


def paper_prune_percents(architecture: str) -> Dict[str, float]:
    """The paper's per-level rates: convolutions 10% (conv6: 15%), fc 20%, output 10%.

    Args:
      architecture: 'conv2', 'conv4' or 'conv6'.
    """
    stages = stages_of(architecture)
    conv_rate = 0.15 if architecture == "conv6" else 0.1
    percents = {name: conv_rate for name in conv_layer_names(stages)}
    percents.update({f"fc{index}": 0.2 for index in range(len(DENSE_UNITS))})
    percents[OUTPUT_LAYER] = 0.1
    return percents


def stages_of(architecture: Union[str, Sequence[Sequence[int]]]) -> Stages:
    """The stages (filter counts per convolution), checked.

    Of a named architecture, or of the given stages.

    Args:
      architecture: 'conv2', 'conv4', 'conv6', or the stages' filter counts, e.g. ((64, 64),
        (128, 128)).

    Raises:
      ValueError: an unknown name, or stages that are not positive filter counts.
    """
    if isinstance(architecture, str):
        if architecture not in ARCHITECTURES:
            raise ValueError(f"no conv architecture {architecture!r}; the paper's are "
                             f"{', '.join(ARCHITECTURES)} (or give the stages' filters, "
                             "e.g. ((64, 64), (128, 128))).")
        return ARCHITECTURES[architecture]
    try:
        stages = tuple(tuple(int(filters) for filters in stage) for stage in architecture)
    except (TypeError, ValueError) as error:
        raise ValueError(f"conv stages {architecture!r} must be a name ({', '.join(ARCHITECTURES)}) "
                         "or a sequence of stages of filter counts, e.g. ((64, 64),).") from error
    if not stages or any(not stage or min(stage) < 1 for stage in stages):
        raise ValueError(f"conv stages {architecture!r}: every stage needs at least one "
                         "convolution with a positive number of filters.")
    return stages
