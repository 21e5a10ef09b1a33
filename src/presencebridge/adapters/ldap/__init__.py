"""LDAP / Active Directory as a directory source (issue 12): see `source` and `settings`.

The source (and with it ldap3) is imported from `source` where one is made: a server
that reads no LDAP directory does not carry ldap3."""

from presencebridge.adapters.ldap.settings import AttributeMap, LdapSettings, SettingsError

__all__ = ["AttributeMap", "LdapSettings", "SettingsError"]
