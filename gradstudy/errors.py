"""The one exception type for bad user input."""


class ConfigError(ValueError):
    """A config value outside its allowed set; the message is one line naming the field."""

__all__ = [
    "ConfigError",
]
