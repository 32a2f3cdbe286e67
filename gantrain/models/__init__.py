"""Model families. Each file registers one family; adding a family = one file + one import here."""

from gantrain.models import acgan, cdcgan, cgan, cyclegan, dcgan, dcgan_anime, gan, infogan, pix2pix, sgan, sgan_mlp, srgan, srresnet  # noqa: F401
from gantrain.models.base import Family, GANModel  # noqa: F401
