"""The aiohttp service: external-auth checks, the OAuth 2.0 / OIDC server and the
account service. Stands on ``authgate.identity``; never imports ``authgate.operator``."""
