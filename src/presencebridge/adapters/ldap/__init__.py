"""LDAP / Active Directory as a directory source (issue 12): see `source` and `settings`."""

from presencebridge.adapters.ldap.settings import AttributeMap, LdapSettings, SettingsError
from presencebridge.adapters.ldap.source import LdapDirectorySource

__all__ = ["AttributeMap", "LdapDirectorySource", "LdapSettings", "SettingsError"]
