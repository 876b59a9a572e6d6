"""Image engines: the arithmetic of the seed's ``convert`` commands.

``wand`` runs ImageMagick itself through MagickWand and is the reference.
"""

ENGINES = ("wand",)
