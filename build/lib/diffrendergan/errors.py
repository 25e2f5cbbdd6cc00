"""Errors users see: one clear line naming the key or file and what was expected."""


class ConfigError(ValueError):
    """A configuration value is invalid. The message names the dotted key."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}")


class DataError(ValueError):
    """An input file or folder cannot be used. The message names the path."""

    def __init__(self, path: object, message: str):
        self.path = str(path)
        super().__init__(f"{path}: {message}")
