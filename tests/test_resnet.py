"""Tests for models/resnet.py: the architecture matches He et al. (2015)."""
import numpy as np
import pytest
import tensorflow as tf

from models import resnet
from pipeline.config import PipelineConfig

IMAGENET_SHAPE = (224, 224, 3)
BN_MOMENTUM = PipelineConfig().bn_momentum
TORCHVISION_PARAMS = {
    18: 11_689_512,
    34: 21_797_672,
    50: 25_557_032,
    101: 44_549_160,
    152: 60_192_808,
}
POOLING_TYPES = (
    tf.keras.layers.MaxPooling2D,
    tf.keras.layers.AveragePooling2D,
    tf.keras.layers.GlobalAveragePooling2D,
    tf.keras.layers.GlobalMaxPooling2D,
)

_MODELS = {}


def imagenet_model(depth):
    """Canonical ImageNet ResNet, built once per test session."""
    if depth not in _MODELS:
        _MODELS[depth] = resnet.build_resnet(depth, 1000, IMAGENET_SHAPE, bn_momentum=BN_MOMENTUM)
    return _MODELS[depth]


def small_model(bn_momentum=BN_MOMENTUM):
    return resnet.build_resnet(18, 2, (64, 64, 3), bn_momentum=bn_momentum, width_multiplier=0.25)


def trainable_params(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def inbound_layers(model):
    """Map each layer name to the names of the layers feeding it."""
    result = {}
    for layer in model.get_config()["layers"]:
        names = []
        for node in layer["inbound_nodes"]:
            names.extend(tensor[0] for tensor in node)
        result[layer["name"]] = names
    return result


@pytest.mark.parametrize("depth", sorted(TORCHVISION_PARAMS))
def test_trainable_parameters_match_torchvision(depth):
    assert trainable_params(imagenet_model(depth)) == TORCHVISION_PARAMS[depth]


@pytest.mark.parametrize("depth, expected", [(18, 3), (34, 3), (50, 4), (101, 4), (152, 4)])
def test_projection_shortcuts_only_where_shape_changes(depth, expected):
    model = imagenet_model(depth)
    inbound = inbound_layers(model)
    adds = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.Add)]
    projections = 0
    for add in adds:
        sources = [model.get_layer(name) for name in inbound[add.name]]
        # A projection shortcut is a second BN-normalised branch; identity passes through as is.
        if all(isinstance(s, tf.keras.layers.BatchNormalization) for s in sources):
            projections += 1
    assert len(adds) == sum(resnet.RESNET_STAGES[depth][1])
    assert projections == expected


@pytest.mark.parametrize("depth", [18, 50])
def test_no_pooling_inside_residual_stages(depth):
    model = imagenet_model(depth)
    pools = [layer for layer in model.layers if isinstance(layer, POOLING_TYPES)]
    assert [type(p) for p in pools] == [
        tf.keras.layers.MaxPooling2D, tf.keras.layers.GlobalAveragePooling2D]
    names = [layer.name for layer in model.layers]
    first_add = next(i for i, layer in enumerate(model.layers)
                     if isinstance(layer, tf.keras.layers.Add))
    last_add = max(i for i, layer in enumerate(model.layers)
                   if isinstance(layer, tf.keras.layers.Add))
    assert names.index(pools[0].name) < first_add
    assert names.index(pools[1].name) > last_add


@pytest.mark.parametrize("depth", [18, 50])
def test_every_conv_is_bias_free_and_followed_by_batch_norm(depth):
    model = imagenet_model(depth)
    inbound = inbound_layers(model)
    convs = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.Conv2D)]
    assert convs
    for conv in convs:
        assert not conv.use_bias, conv.name
        consumers = [model.get_layer(name) for name, sources in inbound.items()
                     if conv.name in sources]
        assert len(consumers) == 1, conv.name
        bn = consumers[0]
        assert isinstance(bn, tf.keras.layers.BatchNormalization), conv.name
        assert bn.epsilon == pytest.approx(1e-5)


@pytest.mark.parametrize("depth", [18, 50])
def test_stage_output_sizes_are_the_papers(depth):
    model = imagenet_model(depth)
    blocks_per_stage = resnet.RESNET_STAGES[depth][1]
    sizes = [model.get_layer(f"stage{stage}_block{blocks}_out").output.shape[1]
             for stage, blocks in enumerate(blocks_per_stage, 1)]
    assert sizes == [56, 28, 14, 7]


def test_bottleneck_blocks_downsample_in_their_first_1x1_convolution():
    model = imagenet_model(50)
    strided = {layer.name: layer.kernel_size for layer in model.layers
               if isinstance(layer, tf.keras.layers.Conv2D) and layer.strides == (2, 2)}
    assert strided == {
        "stem_conv": (7, 7),
        **{f"stage{stage}_block1_conv1": (1, 1) for stage in (2, 3, 4)},
        **{f"stage{stage}_block1_proj": (1, 1) for stage in (2, 3, 4)},
    }


def test_last_batch_norm_of_each_block_starts_at_zero():
    model = small_model()
    inbound = inbound_layers(model)
    for add in (layer for layer in model.layers if isinstance(layer, tf.keras.layers.Add)):
        sources = [model.get_layer(name) for name in inbound[add.name]]
        zero_gamma = [s for s in sources if isinstance(s, tf.keras.layers.BatchNormalization)
                      and not np.any(s.gamma.numpy())]
        assert len(zero_gamma) == 1, add.name


def test_small_model_outputs_probabilities():
    model = small_model()
    images = np.random.default_rng(0).normal(size=(4, 64, 64, 3)).astype("float32")
    probabilities = model(images, training=False).numpy()
    assert probabilities.shape == (4, 2)
    assert np.all(probabilities >= 0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_small_model_gradients_are_finite():
    model = small_model()
    images = np.random.default_rng(0).normal(size=(4, 64, 64, 3)).astype("float32")
    labels = np.array([0, 1, 0, 1])
    with tf.GradientTape() as tape:
        probabilities = model(images, training=True)
        loss = tf.keras.losses.sparse_categorical_crossentropy(labels, probabilities)
    gradients = tape.gradient(loss, model.trainable_weights)
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in gradients)


def test_width_multiplier_shrinks_parameter_count():
    full = trainable_params(imagenet_model(18))
    half = trainable_params(resnet.build_resnet(
        18, 1000, IMAGENET_SHAPE, bn_momentum=BN_MOMENTUM, width_multiplier=0.5))
    quarter = trainable_params(resnet.build_resnet(
        18, 1000, IMAGENET_SHAPE, bn_momentum=BN_MOMENTUM, width_multiplier=0.25))
    assert quarter < half < full


def test_bn_momentum_is_applied_to_every_batch_norm():
    model = small_model(bn_momentum=0.99)
    bns = [layer for layer in model.layers
           if isinstance(layer, tf.keras.layers.BatchNormalization)]
    assert bns and all(bn.momentum == pytest.approx(0.99) for bn in bns)


def test_unknown_depth_names_allowed_depths():
    with pytest.raises(ValueError, match=r"18, 34, 50, 101, 152"):
        resnet.build_resnet(42, 2, (64, 64, 3), bn_momentum=BN_MOMENTUM)
