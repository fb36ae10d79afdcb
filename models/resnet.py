"""Residual networks (He et al. 2015, "Deep Residual Learning for Image Recognition").

The model reads like the paper's Table 1: a stem (conv1 + max-pool), four
residual stages (conv2_x .. conv5_x) built from basic or bottleneck blocks,
then global average pooling and a softmax classifier.
"""
import tensorflow as tf

# The depth table (depth -> block type, blocks per stage) is data the pipeline's config
# also reads, so it lives in a module without TensorFlow.
from models.model_config import RESNET_STAGES

layers = tf.keras.layers

BN_EPSILON = 1e-5
STAGE_FILTERS = (64, 128, 256, 512)
BOTTLENECK_EXPANSION = 4


def conv_bn(x, filters, kernel_size, strides, name, bn_momentum,
            zero_gamma=False):
    """Bias-free convolution followed by batch normalisation (no activation)."""
    if strides > 1 and kernel_size > 1:
        # Symmetric padding (as torchvision), so the strided conv and the projection
        # shortcut sample the same pixels; "same" would pad bottom/right only.
        x = layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same"
    x = layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=False,
        kernel_initializer="he_normal", name=name)(x)
    return layers.BatchNormalization(
        momentum=bn_momentum, epsilon=BN_EPSILON,
        gamma_initializer="zeros" if zero_gamma else "ones", name=f"{name}_bn")(x)


def stem(x, filters, bn_momentum):
    """conv1: 7x7/2 convolution, BN, ReLU, then 3x3/2 max-pool."""
    x = conv_bn(x, filters, 7, 2, "stem_conv", bn_momentum)
    x = layers.ReLU(name="stem_relu")(x)
    x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    return layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)


def projection_shortcut(x, filters, strides, name, bn_momentum):
    """1x1 strided convolution + BN matching the residual branch's shape (option B)."""
    return conv_bn(x, filters, 1, strides, f"{name}_proj", bn_momentum)


def _shortcut(x, out_filters, strides, name, bn_momentum):
    if strides == 1 and x.shape[-1] == out_filters:
        return x
    return projection_shortcut(x, out_filters, strides, name, bn_momentum)


def basic_block(x, filters, strides, name, bn_momentum):
    """Two 3x3 convolutions with a shortcut; output has `filters` channels."""
    shortcut = _shortcut(x, filters, strides, name, bn_momentum)
    y = conv_bn(x, filters, 3, strides, f"{name}_conv1", bn_momentum)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    # Zero gamma on the last BN makes every block start as the identity (Goyal et al. 2017).
    y = conv_bn(y, filters, 3, 1, f"{name}_conv2", bn_momentum,
                zero_gamma=True)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


def bottleneck_block(x, filters, strides, name, bn_momentum):
    """1x1 reduce, 3x3, 1x1 expand (x4) with a shortcut; output has 4 * `filters` channels."""
    out_filters = filters * BOTTLENECK_EXPANSION
    shortcut = _shortcut(x, out_filters, strides, name, bn_momentum)
    # The stride is on the first 1x1, as in the paper's own models; moving it to the 3x3
    # ("ResNet v1.5") costs ~6% more multiply-adds for ~0.5% ImageNet top-1.
    y = conv_bn(x, filters, 1, strides, f"{name}_conv1", bn_momentum)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = conv_bn(y, filters, 3, 1, f"{name}_conv2", bn_momentum)
    y = layers.ReLU(name=f"{name}_relu2")(y)
    # Zero gamma on the last BN makes every block start as the identity (Goyal et al. 2017).
    y = conv_bn(y, out_filters, 1, 1, f"{name}_conv3", bn_momentum,
                zero_gamma=True)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


BLOCKS = {"basic": basic_block, "bottleneck": bottleneck_block}


def _scaled(filters, width_multiplier):
    return max(1, int(round(filters * width_multiplier)))


def build_resnet(depth, num_classes, input_shape, *, bn_momentum, width_multiplier=1.0):
    """ResNet-`depth` classifier (channels_last) ending in a softmax over `num_classes`.

    `bn_momentum` is required: its default, and why it is not Keras' 0.99, is
    PipelineConfig.bn_momentum's.
    """
    if depth not in RESNET_STAGES:
        raise ValueError(
            f"Unsupported ResNet depth {depth!r}; allowed depths: {sorted(RESNET_STAGES)}")
    block_type, blocks_per_stage = RESNET_STAGES[depth]
    block = BLOCKS[block_type]

    inputs = tf.keras.Input(shape=input_shape, name="image")
    x = stem(inputs, _scaled(STAGE_FILTERS[0], width_multiplier), bn_momentum)
    for stage, (filters, num_blocks) in enumerate(zip(STAGE_FILTERS, blocks_per_stage), 1):
        for index in range(1, num_blocks + 1):
            strides = 2 if stage > 1 and index == 1 else 1
            x = block(x, _scaled(filters, width_multiplier), strides,
                      f"stage{stage}_block{index}", bn_momentum)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    # In float32 even under mixed precision: a float16 softmax loses small probabilities.
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32",
                           name="predictions")(x)
    return tf.keras.Model(inputs, outputs, name=f"resnet{depth}")
