"""ResNet-20 and VGG-16 for CIFAR-10 as Keras models, with OpenLTH's architectures.

* ``resnet_cifar(20)``: a 3x3 convolution of 16 filters with batch
  normalization and ReLU, then three stages of 3 residual blocks (widths 16,
  32, 64; the first block of stages 2 and 3 halves the resolution with stride
  2 and has a 1x1 convolution + BN shortcut), global average pooling and a
  dense output layer. Convolutions have no bias (BN follows each); kernels
  are Kaiming normal (He, fan-in). 272,474 parameters for 10 classes,
  OpenLTH's count (BN's gamma and beta included, moving statistics not).
* ``vgg_cifar(16)``: 3x3 convolutions 64, 64, M, 128, 128, M, 256 x3, M,
  512 x3, M, 512 x3 (M: 2x2 max-pool), each with BN and ReLU, then a 2x2
  average pool and a dense output layer (OpenLTH's cifar_vgg_16).

Layer names are fixed (conv0, block1_0_conv1, shortcut..., output), so
pruning rates and saved files name them. ``OUTPUT_LAYER`` is 'output'.
"""

from typing import Dict, Sequence

import keras

OUTPUT_LAYER = "output"
VGG_PLANS: Dict[int, Sequence] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512],
}


def kaiming_normal() -> keras.initializers.Initializer:
    """PyTorch's ``kaiming_normal_`` (fan-in, ReLU gain): an untruncated normal."""
    return keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal")


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, relu: bool = True):
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                            kernel_initializer=kaiming_normal(), name=name)(x)
    x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def resnet_cifar(depth: int = 20, input_shape: Sequence[int] = (32, 32, 3),
                 classes: int = 10, width: int = 16) -> keras.Model:
    """OpenLTH's CIFAR ResNet of `depth` (6n + 2) layers as a Keras model.

    Args:
      depth: the number of layers, 6n + 2 (20, 32, 44, 56, 110).
      input_shape: the shape of one image.
      classes: the size of the output layer.
      width: the filters of the first stage (doubled at each of the next two).

    Raises:
      ValueError: a depth that is not 6n + 2.
    """
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"ResNet depth {depth} must be 6n + 2 (20, 32, 44, 56, 110).")
    blocks = (depth - 2) // 6
    inputs = keras.Input(tuple(input_shape))
    x = _conv_bn(inputs, width, 3, 1, "conv0")
    for stage, filters in enumerate((width, 2 * width, 4 * width)):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            name = f"block{stage}_{block}"
            y = _conv_bn(x, filters, 3, stride, f"{name}_conv1")
            y = _conv_bn(y, filters, 3, 1, f"{name}_conv2", relu=False)
            if stride != 1 or int(x.shape[-1]) != filters:
                x = _conv_bn(x, filters, 1, stride, f"{name}_shortcut", relu=False)
            x = keras.layers.ReLU(name=f"{name}_out")(keras.layers.Add(name=f"{name}_add")([x, y]))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(classes, kernel_initializer=kaiming_normal(),
                                 name=OUTPUT_LAYER)(x)
    return keras.Model(inputs, outputs, name=f"resnet{depth}")


def vgg_cifar(depth: int = 16, input_shape: Sequence[int] = (32, 32, 3),
              classes: int = 10) -> keras.Model:
    """OpenLTH's CIFAR VGG (with batch normalization) of `depth` layers as a Keras model.

    Args:
      depth: 11, 13, 16 or 19.
      input_shape: the shape of one image.
      classes: the size of the output layer.

    Raises:
      ValueError: a depth other than 11, 13, 16, 19.
    """
    if depth not in VGG_PLANS:
        raise ValueError(f"VGG depth {depth}: one of {sorted(VGG_PLANS)}.")
    inputs = keras.Input(tuple(input_shape))
    x, index = inputs, 0
    for item in VGG_PLANS[depth]:
        if item == "M":
            x = keras.layers.MaxPooling2D(2, name=f"pool{index}")(x)
            continue
        x = keras.layers.Conv2D(int(item), 3, padding="same", kernel_initializer=kaiming_normal(),
                                name=f"conv{index}")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"conv{index}_bn")(x)
        x = keras.layers.ReLU(name=f"conv{index}_relu")(x)
        index += 1
    x = keras.layers.AveragePooling2D(2, name="avgpool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(classes, kernel_initializer=kaiming_normal(),
                                 name=OUTPUT_LAYER)(x)
    return keras.Model(inputs, outputs, name=f"vgg{depth}")
