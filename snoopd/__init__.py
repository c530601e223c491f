"""snoopd: an IGMP snooping switch for Linux bridges, in userspace."""

__version__ = "0.1.0"
