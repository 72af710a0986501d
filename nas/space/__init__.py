"""Search spaces: the schema, its YAML loader and the Arch (one point of a space)."""

from nas.space._arch import (
    Arch,
    arch_from_dict,
    arch_from_indices,
    arch_indices,
    enumerate_arches,
    load_arch,
    mutate_arch,
    reference_arch,
    sample_arch,
)
from nas.space._ops import OPS, OpSpec, OptionSpec, get_op, list_ops
from nas.space._schema import (
    Backbone,
    Geometry,
    GeometryOverride,
    OpChoice,
    SearchSpace,
    Slot,
    SlotGroup,
    check_geometry,
    load_space,
    parse_space,
    parse_space_text,
    with_geometry,
)
from nas.space._unet import Block, UNetConfig, parse_unet_config, plan_blocks
from nas.space._yaml import load_yaml_file

__all__ = [
    "OPS",
    "Arch",
    "Backbone",
    "Block",
    "Geometry",
    "GeometryOverride",
    "OpChoice",
    "OpSpec",
    "OptionSpec",
    "SearchSpace",
    "Slot",
    "SlotGroup",
    "UNetConfig",
    "arch_from_dict",
    "arch_from_indices",
    "arch_indices",
    "check_geometry",
    "enumerate_arches",
    "get_op",
    "list_ops",
    "load_arch",
    "load_space",
    "load_yaml_file",
    "mutate_arch",
    "parse_space",
    "parse_space_text",
    "parse_unet_config",
    "plan_blocks",
    "reference_arch",
    "sample_arch",
    "with_geometry",
]
