"""The ``{"class_name", "config"}`` form shared by losses, metrics and optimizers."""

__all__ = ["Configurable", "deserialize_from"]


def deserialize_from(classes, config, kind):
    """The instance ``config`` describes, its class looked up in ``classes`` (name -> class);
    ``kind`` ("loss", "metric", ...) names it in errors."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise TypeError("config: expected a dict with 'class_name' and 'config' keys, "
                        f"got {config!r}")
    cls = classes.get(config["class_name"])
    if cls is None:
        raise ValueError(f"config: unknown {kind} class {config['class_name']!r}; expected one "
                         f"of {sorted(classes)}")
    return cls.from_config(dict(config.get("config", {})))


class Configurable:
    """Base of losses, metrics and optimizers: ``from_config`` rebuilds an instance from the
    dict its ``get_config`` returns (the constructor's keyword arguments)."""

    @classmethod
    def from_config(cls, config):
        if not isinstance(config, dict):
            raise TypeError(f"config: expected a dict, got {type(config).__name__}")
        return cls(**config)
