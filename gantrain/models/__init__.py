"""Model families. Each file registers one family; adding a family = one file + one import here."""

from gantrain.models import dcgan, gan  # noqa: F401
from gantrain.models.base import Family, Networks  # noqa: F401
