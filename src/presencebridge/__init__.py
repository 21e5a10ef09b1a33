"""presencebridge: presence hub between Microsoft Teams and a PBX / UC system."""

__version__ = "0.1.0"
