"""The named architectures: each is one configuration of an assembler."""

from __future__ import annotations

from .factory import register_model
from .papers import ALOM, CHEN, CICEK, HE, HU, OKTAY, RONNEBERGER, TAN, WOO, ZHOU
from .unet import UNet
from .unetpp import UNetPlusPlus

# The widths and layers of the most used reference implementation
# (github.com/LeeJunHyun/Image_Segmentation, network.py).
REFERENCE = dict(
    encoder="classic",
    encoder_channels=(64, 128, 256, 512),
    bottleneck="conv",
    bottleneck_channels=1024,
    decoder_channels=(512, 256, 128, 64),
    upsample="nearest_conv",
    conv_bias=True,
)
R2 = dict(encoder_block="r2", bottleneck="r2", decoder_block="r2", t=2)
ATTENTION = dict(skip_gate="attention")
# Pretrained-encoder U-Nets: five timm feature levels (/2 … /32), a decoder stage per skip
# and one more without a skip back to full resolution.
TIMM = dict(
    encoder_depth=5,
    bottleneck="none",
    decoder_channels=(256, 128, 64, 32, 16),
    upsample="nearest",
    conv_bias=False,
)
CLASSIC_3D = dict(
    spatial_dims=3,
    encoder="classic",
    encoder_channels=(32, 64, 128, 256),
    bottleneck_channels=512,
    decoder_channels=(256, 128, 64, 32),
    upsample="transpose",
)


@register_model(UNet, paper=RONNEBERGER)
def unet():
    """The original U-Net: double 3×3 convs, max pooling, nearest upsampling + conv, 64…1024."""
    return dict(REFERENCE)


@register_model(UNet, paper=OKTAY)
def attn_unet():
    """Attention U-Net: U-Net with additive attention gates on the four skips."""
    return dict(REFERENCE, **ATTENTION)


@register_model(UNet, paper=ALOM)
def r2unet():
    """R2U-Net: recurrent residual (R2) blocks in every stage, t=2."""
    return dict(REFERENCE, **R2)


@register_model(UNet, paper=f"{ALOM}, {OKTAY}")
def attn_r2unet():
    """Attention R2U-Net: R2 blocks in every stage and attention-gated skips."""
    return dict(REFERENCE, **R2, **ATTENTION)


@register_model(UNetPlusPlus, paper=ZHOU)
def unetpp():
    """U-Net++: nested dense skip pathways, widths 32…512, optional deep supervision."""
    return dict(encoder="classic", encoder_channels=(32, 64, 128, 256), bottleneck_channels=512)


@register_model(UNet, paper=CICEK)
def unet3d():
    """3D U-Net: volumetric double convs, widths 32…512, transposed-conv upsampling."""
    return dict(CLASSIC_3D)


@register_model(UNet, paper=f"{RONNEBERGER}, {HE}")
def unet_resnet34():
    """U-Net decoder on a ResNet-34 encoder."""
    return dict(TIMM, encoder="resnet34")


@register_model(UNet, paper=f"{RONNEBERGER}, {TAN}")
def unet_efficientnet_lite0():
    """U-Net decoder on an EfficientNet-Lite0 encoder, whose ImageNet weights install offline."""
    return dict(TIMM, encoder="efficientnet_lite0")


@register_model(UNet, paper=f"{OKTAY}, {TAN}")
def attn_unet_efficientnet_lite0():
    """Attention U-Net decoder on an EfficientNet-Lite0 encoder (ImageNet weights install offline)."""
    return dict(TIMM, encoder="efficientnet_lite0", **ATTENTION)


@register_model(UNet, paper=f"{RONNEBERGER}, {HE}")
def unet_resnet50():
    """U-Net decoder on a ResNet-50 encoder."""
    return dict(TIMM, encoder="resnet50")


@register_model(UNet, paper=f"{OKTAY}, {HE}")
def attn_unet_resnet34():
    """Attention U-Net decoder on a ResNet-34 encoder."""
    return dict(TIMM, encoder="resnet34", **ATTENTION)


@register_model(UNet, paper=f"{OKTAY}, {HE}")
def attn_unet_resnet50():
    """Attention U-Net decoder on a ResNet-50 encoder."""
    return dict(TIMM, encoder="resnet50", **ATTENTION)


@register_model(UNet, paper=f"{ALOM}, {OKTAY}, {HE}")
def attn_r2unet_resnet34():
    """Pretrained Attention R2U-Net: ResNet-34 encoder, R2 bottleneck and decoder, gated skips."""
    return dict(TIMM, encoder="resnet34", bottleneck="r2", decoder_block="r2", **ATTENTION)


@register_model(UNet, paper=f"{ALOM}, {OKTAY}, {HE}")
def attn_r2unet_resnet50():
    """Attention R2U-Net on a ResNet-50 encoder: R2 bottleneck and decoder, gated skips."""
    return dict(TIMM, encoder="resnet50", bottleneck="r2", decoder_block="r2", **ATTENTION)


@register_model(UNetPlusPlus, paper=f"{ZHOU}, {HE}")
def unetpp_resnet34():
    """U-Net++ nested decoder on a ResNet-34 encoder."""
    return dict(
        encoder="resnet34",
        bottleneck="none",
        decoder_channels=(256, 128, 64, 32),
        upsample="nearest",
        conv_bias=False,
    )


@register_model(UNet, paper=f"{OKTAY}, {CHEN}, {HU}")
def attn_unet_resnet50_aspp_se():
    """ResNet-50 encoder, ASPP bottleneck (6/12/18, 2048→1024), gated skips, SE after each stage."""
    return dict(
        TIMM,
        encoder="resnet50",
        bottleneck="aspp",
        bottleneck_channels=1024,
        aspp_rates=(6, 12, 18),
        decoder_attention="se",
        attention_reduction=16,
        **ATTENTION,
    )


@register_model(UNet, paper=f"{OKTAY}, {HU}, {HE}")
def resattn_unet_resnet50():
    """ResNet-50 encoder, two-conv 1024 bridge, gated skips, SE after decoder stages 512…64."""
    return dict(
        encoder="resnet50",
        encoder_depth=5,
        bottleneck="conv",
        bottleneck_channels=1024,
        decoder_channels=(512, 256, 128, 64),
        upsample="nearest_conv",
        conv_bias=False,
        decoder_attention="se",
        **ATTENTION,
    )


@register_model(UNet, paper=f"{CICEK}, {WOO}")
def attn_unet3d_cbam():
    """3D U-Net with CBAM after each encoder stage and on each skip, encoder dropout 0.1."""
    return dict(
        CLASSIC_3D,
        encoder_attention="cbam",
        skip_gate="cbam",
        encoder_dropout=0.1,
        aux_classes=None,
    )
