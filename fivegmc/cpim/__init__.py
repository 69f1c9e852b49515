"""CPIM (RFC 3862) and IMDN (RFC 5438) codecs, sans-IO."""

from fivegmc.cpim.imdn import (
    ALLOWED_STATUS,
    IMDN_CONTENT_TYPE,
    IMDN_XML_NS,
    Imdn,
    ImdnKind,
    ImdnStatus,
    build_imdn,
    build_imdn_report_cpim,
    parse_imdn,
)
from fivegmc.cpim.message import (
    CPIM_DEFAULT_NS,
    IMDN_NS,
    CpimHeader,
    CpimMessage,
    build_cpim,
    parse_cpim,
)

__all__ = [
    "ALLOWED_STATUS",
    "CPIM_DEFAULT_NS",
    "IMDN_CONTENT_TYPE",
    "IMDN_NS",
    "IMDN_XML_NS",
    "CpimHeader",
    "CpimMessage",
    "Imdn",
    "ImdnKind",
    "ImdnStatus",
    "build_cpim",
    "build_imdn",
    "build_imdn_report_cpim",
    "parse_cpim",
    "parse_imdn",
]
