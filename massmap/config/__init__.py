"""Configuration: one typed schema (frozen dataclasses), YAML files and ``--set`` overrides."""
from massmap.config.core import ConfigError, dump_yaml, resolve, to_dict, valid_keys
from massmap.config.schema import Config


def load_config(files=(), overrides=(), base=None) -> Config:
    """Resolve the full :class:`Config` from defaults, YAML files and ``key=value`` overrides."""
    return resolve(Config, files, overrides, base)


__all__ = ["Config", "ConfigError", "dump_yaml", "load_config", "to_dict", "valid_keys"]
