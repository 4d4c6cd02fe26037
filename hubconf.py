"""torch.hub entry points: one per registered unetzoo model, generated from the registry.

    torch.hub.list("<owner>/unetzoo")
    torch.hub.help("<owner>/unetzoo", "attn_r2unet_resnet34")
    model = torch.hub.load("<owner>/unetzoo", "attn_r2unet_resnet34", classes=3)

Keyword arguments pass through to :func:`unetzoo.create_model`.
"""

dependencies = ["torch", "timm"]


def _entry_points():
    from unetzoo.hub import create_model
    from unetzoo.models import MODELS, model_spec

    def make(name):
        def entry(**kwargs):
            return create_model(name, **kwargs)

        spec = model_spec(name)
        doc = spec.doc if spec else (MODELS.get(name).__doc__ or "")
        papers = "; ".join(spec.references) if spec else ""
        paper = f"\n\nPapers: {papers}." if papers else ""
        entry.__name__ = entry.__qualname__ = name
        entry.__doc__ = (
            f"{doc}{paper}\n\nBuilds unetzoo.create_model({name!r}, **kwargs); e.g. in_channels=1, classes=3."
        )
        return entry

    return {name: make(name) for name in MODELS.names()}


globals().update(_entry_points())
