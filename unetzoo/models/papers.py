"""Citations of the papers behind the named architectures."""

# Short citations, as tables show them; PAPERS maps each to its full reference.
RONNEBERGER = "Ronneberger 2015"
OKTAY = "Oktay 2018"
ALOM = "Alom 2018"
ZHOU = "Zhou 2018"
CICEK = "Çiçek 2016"
HE = "He 2016"
CHEN = "Chen 2017"
HU = "Hu 2018"
WOO = "Woo 2018"
TAN = "Tan 2019"
PAPERS = {
    RONNEBERGER: "Ronneberger et al. 2015, U-Net, arXiv:1505.04597",
    OKTAY: "Oktay et al. 2018, Attention U-Net, arXiv:1804.03999",
    ALOM: "Alom et al. 2018, R2U-Net, arXiv:1802.06955",
    ZHOU: "Zhou et al. 2018, UNet++, arXiv:1807.10165",
    CICEK: "Çiçek et al. 2016, 3D U-Net, arXiv:1606.06650",
    HE: "He et al. 2016, ResNet, arXiv:1512.03385",
    CHEN: "Chen et al. 2017, DeepLabv3 (ASPP), arXiv:1706.05587",
    HU: "Hu et al. 2018, Squeeze-and-Excitation, arXiv:1709.01507",
    WOO: "Woo et al. 2018, CBAM, arXiv:1807.06521",
    TAN: "Tan and Le 2019, EfficientNet, arXiv:1905.11946",
}


def full_references(short: str) -> list[str]:
    """The full references of a comma-separated list of short citations."""
    return [PAPERS.get(p, p) for p in short.split(", ") if p]
