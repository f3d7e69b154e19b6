"""The project's exceptions: one base, and one per layer."""


class EngagementError(Exception):
    """Base of every error this product raises on purpose."""


class ConfigError(EngagementError):
    """The configuration is wrong; the message says what to fix. Start-up stops."""


class StateError(EngagementError):
    """Stored state cannot be used as it is (e.g. an unknown state version)."""
