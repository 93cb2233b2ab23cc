"""The kopf operator: reconciles OAuthClient, Organization and Role resources into the
identity store. It stands on ``authgate.identity`` only, never on ``authgate.gateway``.
"""
