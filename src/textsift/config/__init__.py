"""Config files: schema, loading, overrides, validation."""

from textsift.config.loader import config_to_dict, dump_yaml, load_builtins, load_config, resolve
from textsift.config.schema import Config, DataConfig, EarlyStoppingConfig, OptimizerConfig, TrainerConfig
from textsift.config.spec import Component, Section, Spec

__all__ = [
    "Component", "Config", "DataConfig", "EarlyStoppingConfig", "OptimizerConfig", "Section", "Spec",
    "TrainerConfig", "config_to_dict", "dump_yaml", "load_builtins", "load_config", "resolve",
]
