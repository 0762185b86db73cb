"""TODO."""
from geo_mz.cli.main import main
