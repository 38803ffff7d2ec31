"""Policy as data, shared by benefits and audit: the packs (`packs/*.yaml`) and their loading,
validation and resolution (`resolution.py`). See ../DESIGN.md, "Policy packs"."""
from shared.policy.resolution import (
    POLICIES_DIR, PackRegistry, PackSpec, ParameterSpec, PolicyPackError, PolicyParameterMissing, ResolvedParameter,
    ResolvedPolicy, Source, default_registry, describe_pack, list_packs, load_pack_file, load_packs, resolve_pack,
    to_policy_value,
)

__all__ = [
    "POLICIES_DIR", "PackRegistry", "PackSpec", "ParameterSpec", "PolicyPackError", "PolicyParameterMissing",
    "ResolvedParameter", "ResolvedPolicy", "Source", "default_registry", "describe_pack", "list_packs",
    "load_pack_file", "load_packs", "resolve_pack", "to_policy_value",
]
