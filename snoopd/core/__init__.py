"""The pure snooping engine: no sockets, no clock, no I/O.

Decoded messages, port events and ``now`` (monotonic float seconds) go in;
typed actions and the next deadline come out.
"""
