"""Adapters: each wraps one kernel mechanism (capture, sending, netlink) and makes no protocol decisions."""
