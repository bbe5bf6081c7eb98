"""Settings: the glossary, typed values, and layered loading (DESIGN §2)."""

from postroom.settings.glossary import GLOSSARY, Settings, SettingSpec
from postroom.settings.home import Home
from postroom.settings.loader import Configuration, Problem, load, spec_for, update_file
from postroom.settings.values import MASK, HostPort, RateLimit, Secret

__all__ = [
    "GLOSSARY",
    "MASK",
    "Configuration",
    "Home",
    "HostPort",
    "Problem",
    "RateLimit",
    "Secret",
    "SettingSpec",
    "Settings",
    "load",
    "spec_for",
    "update_file",
]
