"""ResNet-20 and VGG-16 on CIFAR-10 with OpenLTH's recipes (Keras models).

``constants`` holds each model's defaults (``CONFIGS``) and the ``Family``;
``runners/`` and ``argfiles/`` are thin entry points over ``lottery_ticket.cli``.
CIFAR-10 downloads with ``python -m lottery_ticket.cifar10_conv.download_data``.
"""
