"""fivegmc: a lab simulator of a China 5G Message network."""

__version__ = "0.1.0"
